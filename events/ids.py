"""The id rule: aggregate and command ids travel inside NATS subjects."""

from __future__ import annotations

import re
import uuid
from typing import Annotated

from pydantic import StringConstraints

__all__ = ["ID_MAX_LENGTH", "ID_PATTERN", "Id", "event_msg_id", "is_valid_id", "new_id"]

ID_MAX_LENGTH = 128
ID_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"
_ID_RE = re.compile(ID_PATTERN)

Id = Annotated[str, StringConstraints(pattern=ID_PATTERN, strict=True)]
"""A subject-safe id: 1-128 characters of ``[A-Za-z0-9_-]``."""


def is_valid_id(value: object) -> bool:
    """Tells whether ``value`` is a subject-safe id."""
    return isinstance(value, str) and _ID_RE.fullmatch(value) is not None


def new_id() -> str:
    """Returns a fresh random id (32 hex characters)."""
    return uuid.uuid4().hex


def event_msg_id(command_id: str, index: int) -> str:
    """Returns the deterministic ``Nats-Msg-Id`` of the ``index``-th event of a command.

    Deriving it from the command id is what makes a retried command write nothing new:
    JetStream drops a message whose id it has seen inside the duplicate window.
    """
    return f"{command_id}:{index}"
