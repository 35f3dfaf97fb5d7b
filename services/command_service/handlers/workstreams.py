"""Workstream commands: create reads its run; ready reads the workstreams it depends on."""

from __future__ import annotations

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
from services.domain import workstream
from services.domain.context import Facts

from ..routes import AnyRoute, Outcome, Route
from ..unit_of_work import UnitOfWork
from .common import on_target, with_run

__all__ = ["ROUTES"]


async def mark_ready(uow: UnitOfWork, command: MarkWorkstreamReady) -> Outcome:
    """Marks a workstream ready once every workstream it depends on is done."""
    repo = uow.repos.workstreams
    loaded = await uow.get(repo, command.workstream_id)
    depends_on = loaded.state.depends_on if loaded.state else ()
    dependencies = {d: (await uow.get(repo, d)).state for d in depends_on}
    uow.record(repo, loaded, workstream.decide(loaded.state, command,
                                               uow.context(Facts(workstreams=dependencies))))
    return Outcome(loaded)


_on_workstream = on_target(lambda repos: repos.workstreams, workstream.decide)

ROUTES: tuple[AnyRoute, ...] = (
    Route(CreateWorkstream, with_run(lambda repos: repos.workstreams, workstream.decide,
                                     lambda command: command.run_id)),
    Route(MarkWorkstreamReady, mark_ready),
    *(Route(cls, _on_workstream) for cls in (
        StartWorkstream, PauseWorkstream, ResumeWorkstream, BlockWorkstream,
        UnblockWorkstream, SucceedWorkstream, FailWorkstream, CancelWorkstream,
        SkipWorkstream)),
)
