"""``python -m services.lifecycle``: the pending-lifecycle consumer process, with the
pending-period timer beside it."""

from services.actions import pending_lifecycle
from services.core.runtime import run_service
from services.core.timer import PendingTimer

run_service(pending_lifecycle(), background=[PendingTimer.beside])
