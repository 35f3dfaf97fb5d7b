"""The read side's supervisor stops a child whose projector halted, so that it is started
again like one that died; a child that serves on is left alone."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, cast

import pytest

from services.read_side import ChildStatus, ReadSideProcess
from services.settings import Settings


class FakeChild:
    """A child process that prints the given status lines, then waits to be stopped."""

    def __init__(self, *statuses: ChildStatus) -> None:
        self.stdout = asyncio.StreamReader()
        for status in statuses:
            self.stdout.feed_data(f"{json_line(status)}\n".encode())
        self.terminated = 0
        self.returncode: int | None = None
        self._ended = asyncio.Event()

    def terminate(self) -> None:
        self.terminated += 1
        self.returncode = 0
        self.stdout.feed_eof()
        self._ended.set()

    async def wait(self) -> int:
        await self._ended.wait()
        return 0


def json_line(status: ChildStatus) -> str:
    return json.dumps(status.to_dict())


def supervisor(tmp_path: Path) -> ReadSideProcess:
    return ReadSideProcess(cast(Any, None), "nats://127.0.0.1:1", Settings(data_dir=tmp_path))


async def test_a_child_whose_projector_halted_is_stopped_to_be_started_again(
        tmp_path: Path) -> None:
    child = FakeChild(ChildStatus(ready=True, position=5),
                      ChildStatus(ready=True, position=5, halted="IO Error: disk full"))
    process = supervisor(tmp_path)
    assert await asyncio.wait_for(process._pump(cast(Any, child)), 5) == 0
    assert child.terminated >= 1
    assert process.status.halted == "IO Error: disk full"


async def test_a_child_that_serves_on_is_left_alone(tmp_path: Path) -> None:
    child = FakeChild(ChildStatus(ready=True, position=5), ChildStatus(ready=True, position=9))
    process = supervisor(tmp_path)
    pumping = asyncio.create_task(process._pump(cast(Any, child)))
    await asyncio.sleep(0.1)
    assert not pumping.done()
    assert (child.terminated, process.status.position) == (0, 9)
    pumping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pumping
