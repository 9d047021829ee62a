"""``python -m services.lifecycle``: the pending-lifecycle consumer process, with the
pending-period timer as its peer."""

from services.entrypoints.bootstrap import run_service
from services.entrypoints.timer import pending_timer
from services.service_layer.actions import pending_lifecycle

run_service(pending_lifecycle(), peers=[pending_timer])
