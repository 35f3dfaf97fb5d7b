"""Subject names for commands and events."""

from __future__ import annotations

from .ids import is_valid_id

__all__ = [
    "COMMAND_PREFIX",
    "EVENT_PREFIX",
    "command_subject",
    "event_subject",
    "events_filter",
    "parse_event_subject",
]

EVENT_PREFIX = "runlog.evt"
COMMAND_PREFIX = "runlog.cmd"


def event_subject(aggregate: str, aggregate_id: str, prefix: str = EVENT_PREFIX) -> str:
    """Returns the subject holding one aggregate's events."""
    if not is_valid_id(aggregate_id):
        raise ValueError(f"invalid aggregate id {aggregate_id!r}")
    return f"{prefix}.{aggregate}.{aggregate_id}"


def events_filter(aggregate: str | None = None, prefix: str = EVENT_PREFIX) -> str:
    """Returns the wildcard subject of all events, or of one aggregate type."""
    return f"{prefix}.{aggregate}.*" if aggregate else f"{prefix}.>"


def parse_event_subject(subject: str, prefix: str = EVENT_PREFIX) -> tuple[str, str]:
    """Splits an event subject into ``(aggregate, aggregate_id)``."""
    head = prefix + "."
    if not subject.startswith(head):
        raise ValueError(f"not an event subject: {subject!r}")
    aggregate, _, aggregate_id = subject[len(head) :].partition(".")
    if not aggregate or not is_valid_id(aggregate_id):
        raise ValueError(f"not an event subject: {subject!r}")
    return aggregate, aggregate_id


def command_subject(aggregate: str, action: str) -> str:
    """Returns the request subject of one command."""
    return f"{COMMAND_PREFIX}.{aggregate}.{action}"
