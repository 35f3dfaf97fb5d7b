"""Patches and test gates: created under a run, then single-aggregate transitions."""

from __future__ import annotations

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
from services.domain import gate, patch

from ..routes import AnyRoute, Route
from .common import on_target, with_run

__all__ = ["ROUTES"]

_on_patch = on_target(lambda repos: repos.patches, patch.decide)
_on_gate = on_target(lambda repos: repos.gates, gate.decide)

ROUTES: tuple[AnyRoute, ...] = (
    Route(ProposePatch, with_run(lambda repos: repos.patches, patch.decide,
                                 lambda command: command.run_id)),
    *(Route(cls, _on_patch) for cls in (
        ValidatePatch, AcceptPatch, RejectPatch, ApplyPatch, MarkPatchApplied, TestPatch,
        VerifyPatch, CommitPatch, RollBackPatch)),
    Route(CreateGate, with_run(lambda repos: repos.gates, gate.decide,
                               lambda command: command.run_id)),
    *(Route(cls, _on_gate) for cls in (StartGate, PassGate, FailGate, WaiveGate)),
)
