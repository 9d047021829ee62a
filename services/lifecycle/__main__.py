"""``python -m services.lifecycle``: the pending-lifecycle consumer process, with the
pending-period timer beside it."""

from services.actions import pending_lifecycle
from services.core.runtime import ConsumerService, run_service
from services.core.timer import PendingTimer


def timer(service: ConsumerService) -> PendingTimer:
    assert service.pool is not None and service.pipeline is not None
    return PendingTimer(service.settings, service.programs, service.pool, service.pipeline)


run_service(pending_lifecycle(), background=[timer])
