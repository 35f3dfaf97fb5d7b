"""runlog's own exceptions; adapters translate driver errors into these."""

from __future__ import annotations

__all__ = [
    "AlreadyRunning",
    "ConcurrencyConflict",
    "ConfigError",
    "EmbeddedNatsError",
    "RunlogError",
    "ServiceNotRunning",
    "StoreError",
    "StoreUnavailable",
]


class RunlogError(Exception):
    """Base of every runlog error."""


class StoreError(RunlogError):
    """The event store refused or failed an operation."""


class StoreUnavailable(StoreError):
    """The event store could not be reached in time."""


class ConcurrencyConflict(StoreError):
    """An append expected a different last sequence for its aggregate."""

    def __init__(self, subject: str, message: str, actual_last_seq: int | None = None) -> None:
        super().__init__(message)
        self.subject = subject
        self.actual_last_seq = actual_last_seq
        """The last sequence the log holds for what was checked, when it said so."""


class EmbeddedNatsError(RunlogError):
    """The embedded nats-server could not be found or started."""


class AlreadyRunning(RunlogError):
    """Another runlog process holds the data directory."""


class ConfigError(RunlogError):
    """A setting (a ``RUNLOG_*`` variable or a command-line flag) has a value it cannot take."""


class ServiceNotRunning(RunlogError):
    """No running ``runlog up`` (or configured NATS) answers for this data directory."""
