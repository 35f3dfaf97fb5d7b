"""The id rule: aggregate and command ids travel inside NATS subjects."""

from __future__ import annotations

import functools
import itertools
import re
import uuid
from typing import Annotated

from pydantic import StringConstraints

__all__ = [
    "ID_MAX_LENGTH",
    "ID_PATTERN",
    "Id",
    "escaped_id",
    "event_msg_id",
    "is_valid_id",
    "model_aggregate_id",
    "model_name_from_id",
    "new_id",
]

ID_MAX_LENGTH = 128
ID_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"
_ID_RE = re.compile(ID_PATTERN)
_PLAIN_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-")
_ESCAPE_RE = re.compile(r"_([0-9a-f]{2})")

Id = Annotated[str, StringConstraints(pattern=ID_PATTERN, strict=True)]
"""A subject-safe id: 1-128 characters of ``[A-Za-z0-9_-]``."""


def is_valid_id(value: object) -> bool:
    """Tells whether ``value`` is a subject-safe id."""
    return isinstance(value, str) and _ID_RE.fullmatch(value) is not None


_PROCESS_PREFIX = f"{uuid.uuid4().int >> 64:016x}"
_counter = itertools.count()


def new_id() -> str:
    """Returns a fresh id: 32 hex characters, unique across processes and restarts.

    64 random bits drawn once per process, then a counter: ids need uniqueness, not
    secrecy, and drawing random bits per id measured as 3% of a command's time.
    """
    return f"{_PROCESS_PREFIX}{next(_counter):016x}"


def event_msg_id(command_id: str, index: int) -> str:
    """Returns the deterministic ``Nats-Msg-Id`` of the ``index``-th event of a command.

    Deriving it from the command id is what makes a retried command write nothing new:
    JetStream drops a message whose id it has seen inside the duplicate window.
    """
    return f"{command_id}:{index}"


def escaped_id(name: str) -> str:
    """A name that may hold dots or colons (a model, a work kind) as a subject-safe id."""
    return model_aggregate_id(name)


@functools.lru_cache(maxsize=4096)  # a handful of model names, escaped on every usage
def model_aggregate_id(name: str) -> str:
    """Returns the id of a model's aggregate: its name with every other byte escaped.

    Model names carry dots (``gemini-2.5-pro``), which subjects forbid. Each UTF-8
    byte outside ``[A-Za-z0-9-]`` becomes ``_`` and two lower-case hex digits (so
    ``_`` itself becomes ``_5f``), which keeps the mapping reversible. Raises
    ``ValueError`` when the name is empty or its escaped form breaks the id rule.
    """
    escaped = "".join(chr(b) if b in _PLAIN_BYTES else f"_{b:02x}" for b in name.encode())
    if not is_valid_id(escaped):
        raise ValueError(f"model name {name[:40]!r} is empty or too long once escaped")
    return escaped


def model_name_from_id(aggregate_id: str) -> str:
    """Reverses ``model_aggregate_id``."""
    if _ESCAPE_RE.sub("", aggregate_id).count("_"):
        raise ValueError(f"not an escaped model name: {aggregate_id!r}")
    raw = bytearray()
    pos = 0
    for match in _ESCAPE_RE.finditer(aggregate_id):
        raw += aggregate_id[pos : match.start()].encode()
        raw.append(int(match.group(1), 16))
        pos = match.end()
    raw += aggregate_id[pos:].encode()
    return raw.decode()
