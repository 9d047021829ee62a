"""``python -m services.checkout``: the checkout ingestion consumer process."""

from services.checkout.handler import CheckoutIngestion
from services.core.runtime import run_service

run_service(CheckoutIngestion(), "checkouts")
