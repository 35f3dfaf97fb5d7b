"""How each command turns into changes: which aggregates it loads and which events it decides.

Most commands touch one aggregate (``single_aggregate``). The others read facts
from other aggregates, or change several at once; their changes are appended as
one atomic batch with a concurrency check on each aggregate.
"""

from __future__ import annotations

from .breakers import acquire_breaker
from .dependencies import with_dependencies
from .runs import create_run
from .session import Decision, Plan, Session, on_fresh_reads, single_aggregate, with_run
from .tasks import claim_task, end_lease, submit_task
from .usage import record_usage

__all__ = ["PLANS", "Decision", "Plan", "Session", "plan_for"]

PLANS: dict[str, Plan] = {
    "run.create": create_run,
    "task.submit": submit_task,
    "task.claim": claim_task,
    "task.succeed": end_lease,
    "task.fail": end_lease,
    "task.cancel": end_lease,
    "task.expire_lease": end_lease,
    "task.unblock": with_dependencies,
    "workstream.ready": with_dependencies,
    "workstream.create": with_run,
    "patch.propose": with_run,
    "gate.create": with_run,
    "usage.record": record_usage,
    "breaker.acquire": acquire_breaker,
}
"""Commands that need more than ``single_aggregate``, by subject."""


_FRESH: dict[str, Plan] = {subject: on_fresh_reads(plan) for subject, plan in PLANS.items()}
_FRESH_SINGLE = on_fresh_reads(single_aggregate)


def plan_for(subject: str) -> Plan:
    """The plan of the command served on ``runlog.cmd.<subject>``, deciding on fresh reads."""
    return _FRESH.get(subject, _FRESH_SINGLE)
