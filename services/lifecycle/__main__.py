"""``python -m services.lifecycle``: the pending-lifecycle consumer process, with the
pending-period timer beside it."""

from services.entrypoints.bootstrap import run_service
from services.entrypoints.timer import PendingTimer
from services.service_layer.actions import pending_lifecycle

run_service(pending_lifecycle(), background=[PendingTimer.beside])
