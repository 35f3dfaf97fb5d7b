"""The contract: ids, subjects, the event envelope, schema versions and upcasters.

This package imports pydantic and the standard library only.
"""

from .envelope import ENVELOPE_FIELDS, EventEnvelope, utc_now
from .ids import ID_PATTERN, Id, event_msg_id, is_valid_id, new_id
from .subjects import (
    COMMAND_PREFIX,
    EVENT_PREFIX,
    command_subject,
    event_subject,
    events_filter,
    parse_event_subject,
)
from .versions import UpcasterRegistry, registry

__all__ = [
    "COMMAND_PREFIX",
    "ENVELOPE_FIELDS",
    "EVENT_PREFIX",
    "ID_PATTERN",
    "EventEnvelope",
    "Id",
    "UpcasterRegistry",
    "command_subject",
    "event_msg_id",
    "event_subject",
    "events_filter",
    "is_valid_id",
    "new_id",
    "parse_event_subject",
    "registry",
    "utc_now",
]
