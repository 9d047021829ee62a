"""``python -m services.checkout``: the checkout ingestion consumer process."""

from services.actions import checkout_ingestion
from services.core.runtime import run_service

run_service(checkout_ingestion())
