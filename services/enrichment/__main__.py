"""``python -m services.enrichment``: the enrichment consumer. It keeps the reference data of
``loyalty.catalog`` and enriches each newly registered transaction from
``loyalty.transaction-status`` (one consumer group, two subscriptions)."""

from services.actions import enrichment, transaction_enrichment
from services.core.runtime import run_service

run_service(enrichment(), transaction_enrichment())
