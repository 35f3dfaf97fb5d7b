"""The command service: typed handlers, one unit of work, one retry loop, and the claim index."""

from .aggregates import Repositories
from .app import CommandIntake, document_command_handlers
from .service import CommandService, ServiceLimits

__all__ = ["CommandIntake", "CommandService", "Repositories", "ServiceLimits",
           "document_command_handlers"]
