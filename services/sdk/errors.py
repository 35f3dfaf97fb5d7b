"""What the SDK raises: refused commands, unanswered requests, read-side errors, task failures."""

from __future__ import annotations

from collections.abc import Mapping
from typing import get_args

from events.catalog.task import ReportedErrorClass
from events.errors import RETRYABLE_CODES, ErrorCode
from services.errors import RunlogError

__all__ = [
    "RETRYABLE_CODES",
    "BodyNotJson",
    "CommandError",
    "CommandTimeout",
    "LeaseLost",
    "QueryError",
    "SdkError",
    "TaskFailure",
    "error_class_of",
]

_LEASE_GONE = frozenset({ErrorCode.LEASE_MISMATCH, ErrorCode.INVALID_TRANSITION,
                         ErrorCode.NOT_FOUND})

_MESSAGE_MAX_CHARS = 2000
"""``task.fail`` takes a message of at most this many characters."""


class SdkError(RunlogError):
    """Base of every error the SDK raises."""

    @property
    def retryable(self) -> bool:
        """Whether sending the same request again may succeed."""
        return False


def _known_code(code: str) -> str:
    try:
        return ErrorCode(code)
    except ValueError:  # a code of a newer service stays a plain string
        return code


class CommandError(SdkError):
    """The service refused a command (``{"ok": false, ...}``); nothing was written."""

    def __init__(self, subject: str, code: str, message: str,
                 details: Mapping[str, object] | None = None) -> None:
        super().__init__(f"{subject}: {code}: {message}")
        self.subject = subject
        self.code: str = _known_code(code)
        """An ``ErrorCode`` (a ``str``), or the raw code when this SDK does not know it."""
        self.message = message
        self.details: dict[str, object] = dict(details or {})

    @property
    def retryable(self) -> bool:
        """Whether the same command (same ``command_id``) may succeed when sent again."""
        return self.code in RETRYABLE_CODES

    @property
    def lease_gone(self) -> bool:
        """Whether a lease holder's command found the lease no longer its own."""
        return self.code in _LEASE_GONE


class BodyNotJson(CommandError):
    """A command whose body cannot be written as JSON, refused before anything was sent
    (as the service would refuse it: ``validation_failed``)."""

    def __init__(self, subject: str, message: str) -> None:
        super().__init__(subject, ErrorCode.VALIDATION_FAILED, message)


class CommandTimeout(CommandError):
    """No reply came, after every retry; whether the command was written is unknown."""

    def __init__(self, subject: str, message: str) -> None:
        super().__init__(subject, ErrorCode.UNAVAILABLE, message)


class LeaseLost(SdkError):
    """The task's lease is no longer this worker's: another holder took over, or it ended.

    The SDK raises it inside a handler whose ``heartbeat()`` found the lease gone; the
    worker then abandons the task (it neither succeeds nor fails it).
    """

    def __init__(self, task_id: str, cause: CommandError) -> None:
        super().__init__(f"task {task_id}: lease lost ({cause.code}: {cause.message})")
        self.task_id = task_id
        self.cause = cause


class QueryError(SdkError):
    """The read side refused or failed a query; ``code`` says why (e.g. ``wait_timeout``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    @property
    def retryable(self) -> bool:
        """Whether the read side was only too busy (``unavailable``)."""
        return self.code == ErrorCode.UNAVAILABLE


class TaskFailure(Exception):
    """Raised by a task handler: the attempt failed with ``error_class``.

    runlog's recovery table decides what follows (README, "Recovery strategies"):
    transient classes are retried while attempts remain, ``server_error`` on the next
    model of the task's fallback chain, ``context_overflow`` with the ``truncate`` hint;
    the others fail the task at once. ``retry_after_s`` (a provider's ``Retry-After``)
    makes the retry wait at least that long.
    """

    def __init__(self, error_class: ReportedErrorClass, message: str = "",
                 retry_after_s: float | None = None) -> None:
        if error_class not in get_args(ReportedErrorClass):
            raise ValueError(f"unknown error class {error_class!r}; use one of "
                             f"{', '.join(get_args(ReportedErrorClass))}")
        super().__init__(message or error_class)
        self.error_class: ReportedErrorClass = error_class
        self.message = message
        self.retry_after_s = retry_after_s


def error_class_of(error: BaseException) -> tuple[ReportedErrorClass, str]:
    """The ``task.fail`` error class and message for an exception a handler raised.

    ``TaskFailure`` names its class; ``TimeoutError`` is ``timeout``; ``ConnectionError``
    and a command refused as ``conflict``/``unavailable`` are ``network``; anything
    else is ``unknown``, which runlog does not retry (a bug does not go away by itself).
    """
    if isinstance(error, TaskFailure):
        return error.error_class, error.message[:_MESSAGE_MAX_CHARS]
    message = f"{type(error).__name__}: {error}"[:_MESSAGE_MAX_CHARS]
    if isinstance(error, TimeoutError):
        return "timeout", message
    if isinstance(error, ConnectionError) or (isinstance(error, CommandError)
                                              and error.retryable):
        return "network", message
    return "unknown", message
