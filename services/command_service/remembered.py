"""Replies of commands that wrote nothing, kept so a retry gets the same answer.

A command that wrote events is answered again from the log. One that wrote
nothing (a claim that found no task, an acquire refused by an open breaker, a
refusal by the rules) leaves no trace there, so this replica keeps its reply for
a while. Only definitive replies are kept: ``conflict``, ``unavailable`` and
``internal`` invite a retry. The memory is per replica and bounded, and does not
survive a restart: a retry reaching another replica, or arriving much later, is
decided again.
"""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["RememberedReplies"]

_TRANSIENT = frozenset({"conflict", "unavailable", "internal"})


class RememberedReplies:
    """A bounded map from client command ids to the no-write replies they got."""

    def __init__(self, capacity: int = 100_000) -> None:
        self._replies: OrderedDict[tuple[str, str], dict[str, object]] = OrderedDict()
        self._capacity = capacity

    def get(self, subject: str, command_id: str) -> dict[str, object] | None:
        """The reply given to this command id on this subject, if it wrote nothing."""
        return self._replies.get((subject, command_id))

    def keep(self, subject: str, command_id: str, reply: dict[str, object]) -> None:
        """Remembers ``reply`` when it is definitive and wrote nothing."""
        if reply["ok"] and reply.get("events"):
            return  # the log answers this one
        error = reply.get("error")
        if isinstance(error, dict) and error.get("code") in _TRANSIENT:
            return
        self._replies[(subject, command_id)] = reply
        self._replies.move_to_end((subject, command_id))
        while len(self._replies) > self._capacity:
            self._replies.popitem(last=False)
