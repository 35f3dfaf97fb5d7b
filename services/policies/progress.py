"""Work that moves by itself: dependencies unblock, workstreams get ready, runs end.

- A task blocked on ``depends_on`` is unblocked once every task it depends on succeeded.
- A workstream is marked ready once every workstream it depends on succeeded or was
  skipped (at once when it has none); the tasks held for it (``pending``) are then
  queued.
- A run created with ``auto_end`` ends once every task and workstream of it is done:
  it succeeds, or fails when a task or workstream of it failed.

Each command's id names its target and the event that made it due, so a command the
rules refuse (a dependency not done yet) is tried again on the next trigger, never
answered from an earlier refusal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from events.base import Command
from events.codec import StoredEvent
from events.commands.run import FailRun, SucceedRun
from events.commands.task import QueueTask, UnblockTask
from events.commands.workstream import MarkWorkstreamReady
from services.domain.claims import TaskBoard

from .base import CommandSender, Policy
from .ids import policy_command_id

__all__ = ["ProgressPolicy"]

_TASK_ENDS = frozenset({"succeeded", "failed", "cancelled"})
_WORKSTREAM_ENDS = frozenset({"succeeded", "failed", "cancelled", "skipped"})
_WORKSTREAM_DONE = frozenset({"succeeded", "skipped"})


@dataclass(slots=True)
class _Workstream:
    run_id: str
    state: str
    depends_on: tuple[str, ...]


@dataclass(slots=True)
class _AutoEnd:
    state: str
    failed: bool = False
    workstreams: set[str] = field(default_factory=set)


class ProgressPolicy(Policy):
    """Unblocks tasks, readies workstreams and their tasks, and ends ``auto_end`` runs."""

    name = "progress"
    aggregates = frozenset({"task", "workstream", "run"})

    def __init__(self, sender: CommandSender, board: TaskBoard, interval_s: float = 1.0
                 ) -> None:
        super().__init__(sender, interval_s)
        self._board = board
        self._blocked: dict[str, tuple[str, ...]] = {}
        self._dependants: dict[str, set[str]] = {}
        self._workstreams: dict[str, _Workstream] = {}
        self._ws_dependants: dict[str, set[str]] = {}
        self._held_for: dict[str, set[str]] = {}
        self._task_workstream: dict[str, str] = {}
        self._runs: dict[str, _AutoEnd] = {}
        self._task_run: dict[str, str] = {}
        """The run of each open task of an ``auto_end`` run (only its submission names it)."""
        self._due: dict[tuple[str, str], int] = {}
        """(what to do, its target) -> the sequence of the event that made it due."""

    # -- noting what happens ------------------------------------------------------

    def note(self, stored: StoredEvent) -> bool:
        """Keeps the dependency graph and run progress; marks what is due."""
        if stored.aggregate == "task":
            self._note_task(stored)
        elif stored.aggregate == "workstream":
            self._note_workstream(stored)
        else:
            self._note_run(stored)
        return bool(self._due)

    def _note_task(self, stored: StoredEvent) -> None:
        task_id, state = stored.aggregate_id, stored.to_state or ""
        if stored.type in ("TaskSubmitted", "TaskSatisfiedFromCache"):
            # A task the result cache answered is born succeeded: it may end an auto_end run.
            self._submitted(stored)
        if state == "blocked" and task_id not in self._blocked:
            self._blocked[task_id] = ()
        elif state != "blocked":
            self._blocked.pop(task_id, None)
        if state != "pending":
            self._forget_held(task_id)
        if state == "succeeded":
            for dependant in self._dependants.pop(task_id, ()):
                self._due[("unblock", dependant)] = stored.seq
        if state in _TASK_ENDS:
            self._task_ended(stored, state == "failed")

    def _submitted(self, stored: StoredEvent) -> None:
        task_id, data = stored.aggregate_id, stored.data
        if data.get("run_id") in self._runs:
            self._task_run[task_id] = str(data["run_id"])
        depends_on = tuple(str(d) for d in data.get("depends_on") or ())
        if depends_on:
            self._blocked[task_id] = depends_on
            for dependency in depends_on:
                self._dependants.setdefault(dependency, set()).add(task_id)
            self._due[("unblock", task_id)] = stored.seq  # its dependencies may be done
        workstream_id = data.get("workstream_id")
        if isinstance(workstream_id, str) and stored.to_state == "pending":
            self._held_for.setdefault(workstream_id, set()).add(task_id)
            self._task_workstream[task_id] = workstream_id
            if self._workstream_open(workstream_id):
                self._due[("queue", task_id)] = stored.seq

    def _forget_held(self, task_id: str) -> None:
        workstream_id = self._task_workstream.pop(task_id, None)
        if workstream_id is not None:
            self._held_for.get(workstream_id, set()).discard(task_id)

    def _task_ended(self, stored: StoredEvent, failed: bool) -> None:
        run_id = self._task_run.pop(stored.aggregate_id, None)
        progress = self._runs.get(run_id) if run_id is not None else None
        if progress is not None and run_id is not None:
            progress.failed |= failed
            self._due[("end", run_id)] = stored.seq

    def _note_workstream(self, stored: StoredEvent) -> None:
        ws_id, state = stored.aggregate_id, stored.to_state or ""
        if stored.type == "WorkstreamCreated":
            depends_on = tuple(str(d) for d in stored.data.get("depends_on") or ())
            run_id = str(stored.data["run_id"])
            self._workstreams[ws_id] = _Workstream(run_id, state, depends_on)
            for dependency in depends_on:
                self._ws_dependants.setdefault(dependency, set()).add(ws_id)
            self._due[("ready", ws_id)] = stored.seq
            if run_id in self._runs:
                self._runs[run_id].workstreams.add(ws_id)
        workstream = self._workstreams.get(ws_id)
        if workstream is None:
            return
        workstream.state = state
        if state in ("ready", "running"):
            for task_id in sorted(self._held_for.get(ws_id, ())):
                self._due[("queue", task_id)] = stored.seq
        if state in _WORKSTREAM_DONE:
            for dependant in self._ws_dependants.pop(ws_id, ()):
                self._due[("ready", dependant)] = stored.seq
        if state in _WORKSTREAM_ENDS and workstream.run_id in self._runs:
            self._runs[workstream.run_id].failed |= state == "failed"
            self._due[("end", workstream.run_id)] = stored.seq

    def _workstream_open(self, ws_id: str) -> bool:
        workstream = self._workstreams.get(ws_id)
        return workstream is not None and workstream.state in ("ready", "running")

    def _note_run(self, stored: StoredEvent) -> None:
        run_id = stored.aggregate_id
        if stored.type == "RunCreated" and stored.data.get("auto_end"):
            self._runs[run_id] = _AutoEnd(stored.to_state or "pending")
        progress = self._runs.get(run_id)
        if progress is None:
            return
        progress.state = stored.to_state or progress.state
        if progress.state in ("succeeded", "failed", "cancelled"):
            del self._runs[run_id]

    # -- acting -------------------------------------------------------------------

    async def act(self) -> int:
        """Sends every command that became due; returns how many wrote something."""
        due, self._due = self._due, {}
        return await self.each(sorted(due.items(), key=lambda item: item[1]), self._send,
                               self._keep)

    async def _send(self, item: tuple[tuple[str, str], int]) -> int:
        (what, target), seq = item
        command = self._command(what, target, seq)
        return await self.issue(command) if command is not None else 0

    def _keep(self, items: Sequence[tuple[tuple[str, str], int]]) -> None:
        """Puts work back for the next round, unless newer news made it due again since."""
        for key, seq in items:
            self._due.setdefault(key, seq)

    def _command(self, what: str, target: str, seq: int) -> Command | None:
        command_id = policy_command_id(f"progress-{what}", target, seq)
        if what == "unblock":
            return UnblockTask(task_id=target, command_id=command_id) \
                if target in self._blocked and self._dependencies_met(target) else None
        if what == "queue":
            return QueueTask(task_id=target, command_id=command_id) \
                if target in self._task_workstream else None
        if what == "ready":
            return self._ready(target, command_id)
        return self._end(target, command_id)

    def _dependencies_met(self, task_id: str) -> bool:
        # A dependency still open (on the board) means not yet; one the board no longer
        # holds ended, and the rules check that it succeeded.
        return not any(self._board.get(d) is not None for d in self._blocked[task_id])

    def _ready(self, ws_id: str, command_id: str) -> Command | None:
        workstream = self._workstreams.get(ws_id)
        if workstream is None or workstream.state != "pending":
            return None
        if any((dep := self._workstreams.get(d)) is not None and dep.state not in
               _WORKSTREAM_DONE for d in workstream.depends_on):
            return None
        return MarkWorkstreamReady(workstream_id=ws_id, command_id=command_id)

    def _end(self, run_id: str, command_id: str) -> Command | None:
        progress = self._runs.get(run_id)
        if progress is None or progress.state != "running" or self._board.open_tasks(run_id):
            return None
        if any(self._workstreams[w].state not in _WORKSTREAM_ENDS
               for w in progress.workstreams if w in self._workstreams):
            return None
        if progress.failed:
            return FailRun(run_id=run_id, reason="a task or workstream of it failed",
                           command_id=command_id)
        return SucceedRun(run_id=run_id, command_id=command_id)
