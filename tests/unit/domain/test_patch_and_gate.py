"""The patch and test gate machines."""

from __future__ import annotations

from dataclasses import replace

import pytest

from events.base import Command
from events.commands.gate import CreateGate, FailGate, PassGate, StartGate, WaiveGate
from events.commands.patch import (
    AcceptPatch,
    ApplyPatch,
    CommitPatch,
    MarkPatchApplied,
    ProposePatch,
    RejectPatch,
    RollBackPatch,
    TestPatch,
    ValidatePatch,
    VerifyPatch,
)
from events.errors import ErrorCode
from services.domain import MACHINES, DomainError
from services.domain.run import RunState

from .support import ctx, play, running_run

PROPOSE = ProposePatch(patch_id="p1", run_id="r1", title="fix", files=["a.py", "a.py"])
GATE = CreateGate(gate_id="g1", run_id="r1", patch_id="p1", name="unit tests")


def _refused(aggregate: str, state: object, command: Command,
             related: object = None) -> DomainError:
    with pytest.raises(DomainError) as refused:
        MACHINES[aggregate].decide(state, command, ctx(related=related))
    return refused.value


def test_patch_happy_path() -> None:
    proposed = play("patch", [PROPOSE], ctx(related=running_run()))
    assert proposed.files == ("a.py",)
    steps = [ValidatePatch, AcceptPatch, ApplyPatch, MarkPatchApplied, TestPatch, VerifyPatch,
             CommitPatch]
    state = play("patch", [cls(patch_id="p1") for cls in steps], state=proposed)
    assert state.state == "committed"


@pytest.mark.parametrize(("start", "command", "end"), [
    ("proposed", RejectPatch(patch_id="p1", reason="no"), "rejected"),
    ("validating", RejectPatch(patch_id="p1"), "rejected"),
    ("validated", RejectPatch(patch_id="p1"), "rejected"),
    ("applying", RollBackPatch(patch_id="p1", reason="conflict"), "rolled_back"),
    ("testing", RollBackPatch(patch_id="p1", reason="red"), "rolled_back"),
    ("verified", RollBackPatch(patch_id="p1"), "rolled_back"),
])
def test_patch_edges(start: str, command: Command, end: str) -> None:
    proposed = play("patch", [PROPOSE], ctx(related=running_run()))
    assert play("patch", [command], state=replace(proposed, state=start)).state == end


def test_patch_refusals() -> None:
    assert _refused("patch", None, PROPOSE).code == ErrorCode.NOT_FOUND
    pending = RunState(run_id="r1", state="pending")
    assert _refused("patch", None, PROPOSE, pending).code == ErrorCode.INVALID_TRANSITION
    proposed = play("patch", [PROPOSE], ctx(related=running_run()))
    assert _refused("patch", proposed, PROPOSE, running_run()).code == ErrorCode.ALREADY_EXISTS
    assert _refused("patch", None, ApplyPatch(patch_id="p9")).code == ErrorCode.NOT_FOUND
    refused = _refused("patch", proposed, CommitPatch(patch_id="p1"))
    assert refused.code == ErrorCode.INVALID_TRANSITION
    assert refused.message == "patch p1 is proposed; commit needs verified"
    committed = replace(proposed, state="committed")
    assert _refused("patch", committed, RollBackPatch(patch_id="p1")).code == \
        ErrorCode.INVALID_TRANSITION


def test_gate_pass_and_fail() -> None:
    created = play("gate", [GATE], ctx(related=RunState(run_id="r1", state="pending")))
    assert (created.state, created.patch_id) == ("pending", "p1")
    started = play("gate", [StartGate(gate_id="g1")], state=created)
    assert play("gate", [PassGate(gate_id="g1")], state=started).state == "passed"
    assert play("gate", [FailGate(gate_id="g1", reason="red")], state=started).state == "failed"


@pytest.mark.parametrize("start", ["pending", "running", "failed"])
def test_gate_waive(start: str) -> None:
    created = play("gate", [GATE], ctx(related=running_run()))
    waive = WaiveGate(gate_id="g1", reason="flaky", by="alice")
    assert play("gate", [waive], state=replace(created, state=start)).state == "waived"


def test_gate_refusals() -> None:
    assert _refused("gate", None, GATE).code == ErrorCode.NOT_FOUND
    ended = RunState(run_id="r1", state="failed")
    assert _refused("gate", None, GATE, ended).code == ErrorCode.INVALID_TRANSITION
    created = play("gate", [GATE], ctx(related=running_run()))
    assert _refused("gate", created, GATE, running_run()).code == ErrorCode.ALREADY_EXISTS
    assert _refused("gate", None, StartGate(gate_id="g9")).code == ErrorCode.NOT_FOUND
    refused = _refused("gate", created, PassGate(gate_id="g1"))
    assert refused.message == "gate g1 is pending; pass needs running"
    passed = replace(created, state="passed")
    waive = WaiveGate(gate_id="g1", by="bob")
    assert _refused("gate", passed, waive).code == ErrorCode.INVALID_TRANSITION
