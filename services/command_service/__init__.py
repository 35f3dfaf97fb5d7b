"""The command service: typed handlers, one unit of work, one retry loop, and the claim index."""

from .aggregates import Repositories
from .app import register_command_handlers
from .service import CommandService, ServiceLimits

__all__ = ["CommandService", "Repositories", "ServiceLimits", "register_command_handlers"]
