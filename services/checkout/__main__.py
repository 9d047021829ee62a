"""``python -m services.checkout``: the checkout ingestion consumer process."""

from services.entrypoints.bootstrap import run_service
from services.service_layer.actions import checkout_ingestion

run_service(checkout_ingestion())
