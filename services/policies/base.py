"""What every policy shares: it watches the log through the follower and acts on a timer.

A policy is an observer of the one log follower (``wants`` / ``observe``, which only
note what happened and never block) and a loop (``run``) that turns what it noted, or
the clock, into typed commands sent through the command service, the same path a
client's commands take. Each command's id is derived from its trigger, so replicas
racing on the same trigger, or a restart repeating one, write it once.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Protocol

from events.base import Command
from events.codec import StoredEvent

__all__ = ["CommandSender", "Policy"]

log = logging.getLogger(__name__)


class CommandSender(Protocol):
    """Where policies send their commands: the command service."""

    async def send(self, command: Command, headers: Mapping[str, str] | None = None
                   ) -> Mapping[str, object]: ...


class Policy(abc.ABC):
    """A process manager: notes events as they pass, acts every ``interval_s`` and on news."""

    name = "policy"
    aggregates: frozenset[str] = frozenset()
    """The aggregate types whose events it notes."""

    def __init__(self, sender: CommandSender, interval_s: float = 1.0) -> None:
        self.sender = sender
        self.interval_s = interval_s
        self._news = asyncio.Event()

    def wants(self, aggregate: str) -> bool:
        """Whether events of this aggregate type concern it."""
        return aggregate in self.aggregates

    def observe(self, stored: StoredEvent) -> None:
        """Notes one event; wakes the loop when there is something to do."""
        if self.note(stored):
            self._news.set()

    def note(self, stored: StoredEvent) -> bool:
        """Records what the event means for this policy; True when it should act soon."""
        del stored
        return False

    async def run(self) -> None:
        """Acts on news and on the clock until cancelled."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._news.wait(), self.interval_s)
            self._news.clear()
            try:
                await self.act()
            except Exception:
                # A bug in one round must not stop the policy for good.
                log.exception("%s failed; it acts again at its next round", self.name)

    @abc.abstractmethod
    async def act(self) -> int:
        """Sends whatever commands are due now; returns how many wrote something."""

    async def issue(self, command: Command, headers: Mapping[str, str] | None = None) -> bool:
        """Sends one command; True when it wrote events. Refusals are expected races."""
        reply = await self.sender.send(command, headers)
        error = reply.get("error")
        if isinstance(error, Mapping):
            log.info("%s: %s refused: %s", self.name, command.subject, error.get("message"))
            return False
        events = reply.get("events")
        return bool(events)
