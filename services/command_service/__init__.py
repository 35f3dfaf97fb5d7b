"""The command service: request/reply handlers that validate, decide and append."""

from .aggregates import AggregateRepository
from .app import register_command_handlers
from .executor import CommandExecutor

__all__ = ["AggregateRepository", "CommandExecutor", "register_command_handlers"]
