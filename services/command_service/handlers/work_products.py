"""Patches and test gates: created under a run; a patch commits once its gates cleared."""

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
from services.domain.context import Facts

from ..routes import AnyRoute, Outcome, Route
from ..unit_of_work import UnitOfWork
from .common import on_target, with_run

__all__ = ["ROUTES"]

_on_patch = on_target(lambda repos: repos.patches, patch.decide)


async def commit_patch(uow: UnitOfWork, command: CommitPatch) -> Outcome:
    """Commits a patch once every gate of it has passed or been waived."""
    loaded = await uow.get(uow.repos.patches, command.patch_id)
    gates = {g: (await uow.get(uow.repos.gates, g)).state for g in uow.repos.gates_of.of(
        command.patch_id)}
    uow.record(uow.repos.patches, loaded,
               patch.decide(loaded.state, command, uow.context(Facts(gates=gates))))
    return Outcome(loaded)
_on_gate = on_target(lambda repos: repos.gates, gate.decide)

ROUTES: tuple[AnyRoute, ...] = (
    Route(ProposePatch, with_run(lambda repos: repos.patches, patch.decide,
                                 lambda command: command.run_id)),
    *(Route(cls, _on_patch) for cls in (
        ValidatePatch, AcceptPatch, RejectPatch, ApplyPatch, MarkPatchApplied, TestPatch,
        VerifyPatch, RollBackPatch)),
    Route(CommitPatch, commit_patch),
    Route(CreateGate, with_run(lambda repos: repos.gates, gate.decide,
                               lambda command: command.run_id)),
    *(Route(cls, _on_gate) for cls in (StartGate, PassGate, FailGate, WaiveGate)),
)
