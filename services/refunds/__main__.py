"""``python -m services.refunds``: the refunds consumer process."""

from services.actions import refunds
from services.core.runtime import run_service

run_service(refunds())
