"""``python -m services.enrichment``: the enrichment consumer. It keeps the reference data of
``loyalty.catalog`` and enriches each newly registered transaction from
``loyalty.transaction-status``: one process (one pool, one relay, one broker), one consumer
group, two subscriptions."""

from services.entrypoints.bootstrap import run_service
from services.service_layer.actions import enrichment, transaction_enrichment

run_service(enrichment(), transaction_enrichment())
