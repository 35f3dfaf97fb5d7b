"""The workstream machine's decisions."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from events.base import Command
from events.commands.workstream import (
    BlockWorkstream,
    CancelWorkstream,
    CreateWorkstream,
    FailWorkstream,
    MarkWorkstreamReady,
    PauseWorkstream,
    ResumeWorkstream,
    SkipWorkstream,
    StartWorkstream,
    SucceedWorkstream,
    UnblockWorkstream,
)
from events.errors import ErrorCode
from services.domain import DomainError
from services.domain.run import RunState
from services.domain.workstream import WorkstreamState, decide

from .support import ctx, play, running_run, types

CREATE = CreateWorkstream(workstream_id="ws1", run_id="r1", name="backend")


def _created(**changes: Any) -> WorkstreamState:
    created: WorkstreamState = play("workstream", [CREATE], ctx(related=running_run()))
    return replace(created, **changes)


def test_create_needs_the_run() -> None:
    with pytest.raises(DomainError) as refused:
        decide(None, CREATE, ctx())
    assert refused.value.code == ErrorCode.NOT_FOUND
    assert refused.value.message == "run r1 does not exist"


def test_create_needs_a_live_run() -> None:
    with pytest.raises(DomainError) as refused:
        decide(None, CREATE, ctx(related=RunState(run_id="r1", state="succeeded")))
    assert refused.value.code == ErrorCode.INVALID_TRANSITION
    assert refused.value.message == "run r1 is succeeded; workstream.create needs pending/running"


def test_create_in_a_pending_run_and_dedupe_dependencies() -> None:
    command = CREATE.model_copy(update={"depends_on": ["a", "b", "a"]})
    events = decide(None, command, ctx(related=RunState(run_id="r1", state="pending")))
    assert types(events) == ["WorkstreamCreated"]
    assert events[0].depends_on == ["a", "b"]  # type: ignore[attr-defined]


def test_create_twice() -> None:
    with pytest.raises(DomainError) as refused:
        decide(_created(), CREATE, ctx(related=running_run()))
    assert refused.value.code == ErrorCode.ALREADY_EXISTS


def test_cannot_depend_on_itself() -> None:
    command = CREATE.model_copy(update={"depends_on": ["ws1"]})
    with pytest.raises(DomainError) as refused:
        decide(None, command, ctx(related=running_run()))
    assert refused.value.code == ErrorCode.VALIDATION_FAILED


def test_unknown_workstream() -> None:
    with pytest.raises(DomainError) as refused:
        decide(None, StartWorkstream(workstream_id="ws9"), ctx())
    assert refused.value.code == ErrorCode.NOT_FOUND
    assert refused.value.message == "workstream ws9 does not exist"


def test_full_life() -> None:
    steps = [MarkWorkstreamReady, StartWorkstream, PauseWorkstream, ResumeWorkstream,
             BlockWorkstream, UnblockWorkstream, StartWorkstream, SucceedWorkstream]
    state = play("workstream", [cls(workstream_id="ws1") for cls in steps], state=_created())
    assert state.state == "succeeded"


@pytest.mark.parametrize(("start", "command", "end"), [
    ("pending", SkipWorkstream(workstream_id="ws1", reason="not needed"), "skipped"),
    ("ready", SkipWorkstream(workstream_id="ws1"), "skipped"),
    ("paused", FailWorkstream(workstream_id="ws1", reason="x"), "failed"),
    ("blocked", FailWorkstream(workstream_id="ws1"), "failed"),
    ("blocked", CancelWorkstream(workstream_id="ws1"), "cancelled"),
    ("pending", CancelWorkstream(workstream_id="ws1"), "cancelled"),
])
def test_edges(start: str, command: Command, end: str) -> None:
    assert play("workstream", [command], state=_created(state=start)).state == end


def test_start_from_the_wrong_state() -> None:
    with pytest.raises(DomainError) as refused:
        decide(_created(), StartWorkstream(workstream_id="ws1"), ctx())
    assert refused.value.code == ErrorCode.INVALID_TRANSITION
    assert refused.value.message == "workstream ws1 is pending; start needs ready"


def test_skip_only_before_running() -> None:
    with pytest.raises(DomainError) as refused:
        decide(_created(state="running"), SkipWorkstream(workstream_id="ws1"), ctx())
    assert refused.value.code == ErrorCode.INVALID_TRANSITION


def test_ready_needs_dependencies_done() -> None:
    state = _created(depends_on=("a", "b"))
    ready = MarkWorkstreamReady(workstream_id="ws1")
    done = {"a": _created(workstream_id="a", state="succeeded"),
            "b": _created(workstream_id="b", state="skipped")}
    assert types(decide(state, ready, ctx(related=done))) == ["WorkstreamMarkedReady"]
    with pytest.raises(DomainError) as missing:
        decide(state, ready, ctx(related={"a": done["a"]}))
    assert missing.value.code == ErrorCode.NOT_FOUND
    running = done | {"b": _created(workstream_id="b", state="running")}
    with pytest.raises(DomainError) as waiting:
        decide(state, ready, ctx(related=running))
    assert waiting.value.code == ErrorCode.INVALID_TRANSITION
    assert waiting.value.message == "workstream ws1 depends on b, which is running"
