"""A policy's command that gets a transient answer is sent again at a later round; any
other refusal is a race (or a bug) it does not repeat."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence

import pytest

from events.base import Command
from events.commands.task import CancelTask
from services.policies.base import Policy, RetryLater
from tests.support.nats_server import wait_until


class Answers:
    """A command sender that answers from a script (then ``ok`` with one event)."""

    def __init__(self, *codes: str | None) -> None:
        self._codes = list(codes)
        self.sent: list[str] = []

    async def send(self, command: Command, headers: Mapping[str, str] | None = None
                   ) -> Mapping[str, object]:
        self.sent.append(str(command.command_id))
        code = self._codes.pop(0) if self._codes else None
        if code is None:
            return {"ok": True, "events": [{"type": "TaskCancelled"}]}
        return {"ok": False, "error": {"code": code, "message": f"said {code}"}}


class Cancels(Policy):
    """Cancels the tasks on its list, keeping what a transient answer left undone."""

    name = "cancels"

    def __init__(self, sender: Answers, work: list[str]) -> None:
        super().__init__(sender, interval_s=0.01)
        self.work = work
        self.rounds = 0

    async def act(self) -> int:
        self.rounds += 1
        work, self.work = self.work, []
        return await self.each(work, self._cancel, self._keep)

    async def _cancel(self, task_id: str) -> int:
        return await self.issue(CancelTask(task_id=task_id, reason="r", command_id=task_id))

    def _keep(self, task_ids: Sequence[str]) -> None:
        self.work[:0] = task_ids


@pytest.mark.parametrize(("code", "transient"), [
    ("unavailable", True), ("conflict", True),
    ("invalid_transition", False), ("not_found", False), ("internal", False)])
async def test_only_a_transient_answer_is_kept_for_a_later_round(code: str,
                                                                  transient: bool) -> None:
    sender = Answers(None, code)
    policy = Cancels(sender, ["a", "b", "c"])
    if transient:
        with pytest.raises(RetryLater, match=code):
            await policy.act()
        assert policy.work == ["b", "c"]  # the one that failed and those after it
        assert sender.sent == ["a", "b"]  # the round ended there
    else:
        assert await policy.act() == 2  # the refusal is dropped, the round goes on
        assert policy.work == []
        assert sender.sent == ["a", "b", "c"]


async def test_a_round_ended_by_a_transient_answer_is_followed_by_one_that_sends_it_again(
        ) -> None:
    sender = Answers("unavailable", "unavailable")
    policy = Cancels(sender, ["a", "b"])
    running = asyncio.create_task(policy.run())
    async def progress() -> tuple[list[str], int]:
        return policy.work, policy.rounds

    try:
        await wait_until(progress, lambda seen: not seen[0] and seen[1] >= 3)
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
    assert sender.sent[:4] == ["a", "a", "a", "b"]  # the same command, the same id
