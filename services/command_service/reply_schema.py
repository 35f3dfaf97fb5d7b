"""The reply envelope of every command as pydantic models, for the AsyncAPI document.

``replies.ok_reply`` and ``replies.error_reply`` build the replies; these models say what
they build, and a test checks real replies of a running runlog against the document.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from events.errors import ErrorCode

__all__ = ["CommandAccepted", "CommandRefused"]


class CommandAccepted(BaseModel):
    """The command was written (or had been: a resent ``command_id`` gets the same reply)."""

    # A command may add its own fields: task.claim's task, budget.reserve's reservation_id, ...
    model_config = ConfigDict(extra="allow")

    ok: Literal[True]
    id: str = Field(description="the aggregate's id (generated when the command named none)")
    version: int = Field(description="the aggregate's version after the command")
    seq: int = Field(description="stream sequence of the last event written: wait for it to "
                                 "read your write (runlog.sql.query wait_seq)")
    events: list[str] = Field(description="the types of the events written, in order")


class Refusal(BaseModel):
    """Why nothing was written."""

    model_config = ConfigDict(extra="forbid")

    code: ErrorCode = Field(description="retry only conflict and unavailable")
    message: str = Field(description="one line, fit for a person")
    details: dict[str, JsonValue] = Field(description="what the code is about, e.g. the "
                                                      "fields that failed validation")


class CommandRefused(BaseModel):
    """The command was refused; nothing was written."""

    model_config = ConfigDict(extra="forbid")

    ok: Literal[False]
    error: Refusal
