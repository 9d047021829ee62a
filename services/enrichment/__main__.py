"""``python -m services.enrichment``: the enrichment consumer, which keeps the reference data
of ``loyalty.catalog`` (products, stores, offers, coupons assigned to customers)."""

from services.actions import enrichment
from services.core.runtime import run_service

run_service(enrichment())
