"""``python -m services.refunds``: the refunds consumer process."""

from services.entrypoints.bootstrap import run_service
from services.service_layer.actions import refunds

run_service(refunds())
