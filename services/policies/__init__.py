"""Policies: process managers that react to the log (or the clock) by issuing commands.

Every command a policy sends has a deterministic id, so replicas racing on the
same trigger, or a restart repeating one, write it once.
"""

from .base import CommandSender, Policy
from .breaker_feed import BreakerFeedPolicy
from .budget_alerts import BudgetAlertPolicy
from .lease_expiry import LeaseExpiryPolicy
from .progress import ProgressPolicy
from .reservation_reaper import ReservationReaperPolicy
from .run_end import RunEndPolicy
from .task_timeout import TaskTimeoutPolicy
from .worker_drain import WorkerDrainPolicy
from .worker_liveness import WorkerLivenessPolicy

__all__ = ["BreakerFeedPolicy", "BudgetAlertPolicy", "CommandSender", "LeaseExpiryPolicy",
           "Policy", "ProgressPolicy", "ReservationReaperPolicy", "RunEndPolicy",
           "TaskTimeoutPolicy", "WorkerDrainPolicy", "WorkerLivenessPolicy"]
