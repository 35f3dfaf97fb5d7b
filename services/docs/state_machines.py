"""Writes docs/state-machines.md from the transition tables.

Run ``python -m services.docs.state_machines``; with ``--check`` it exits with status 1,
writing nothing, when the committed file is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from events.commands import COMMANDS
from services.docs.generated import write_or_check
from services.domain.machine import TransitionTable, targets_of
from services.domain.registry import MACHINES, Machine

__all__ = ["DOC_PATH", "main", "render"]

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "state-machines.md"

_TITLES = {
    "run": "Run",
    "workstream": "Workstream",
    "task": "Task",
    "worker": "Worker",
    "breaker": "Circuit breaker",
    "patch": "Patch",
    "gate": "Test gate",
    "model": "Model price",
    "budget": "Budget",
}

_CROSS_AGGREGATE = {
    "run": "`run.create` with a `budget_id` needs that budget to exist. "
           "Usage is priced at the model's price in effect when it happened (Model "
           "`price_at`), and for a run with a `budget_id` it is also charged to that budget "
           "in the same atomic append (Budget `charge`).",
    "workstream": "`workstream.create` needs its run `pending` or `running`, and "
                  "`workstream.ready` needs every workstream in `depends_on` `succeeded` "
                  "or `skipped`.",
    "task": "`task.submit` needs its run `running` with room in its own budget and in its "
            "shared budget, and its workstream unfinished (a task of a workstream that is "
            "not running waits in `pending`); `TaskLeased` is appended atomically with the "
            "worker's `WorkerTaskAssigned`, and whatever ends a lease with "
            "`WorkerTaskReleased`; `task.unblock` needs every task in `depends_on` "
            "`succeeded`.",
    "worker": "A worker is `busy` while it holds at least one task; `assign` refuses a "
              "worker at `capacity` or not `idle`/`busy`, and `WorkerLost` frees its slots "
              "and names the tasks whose leases the lease policy must expire.",
    "breaker": "No other aggregate is consulted: callers acquire before a guarded call and "
               "record its outcome, and one breaker per key (a provider, or "
               "`model_aggregate_id(model)`) is shared by every replica through the log.",
    "patch": "`patch.propose` needs its run `running`; committing is not gated in the "
             "domain, so whoever issues `patch.commit` checks first that the patch's gates "
             "are `passed` or `waived`.",
    "gate": "`gate.create` needs its run `pending` or `running`; a gate may name the patch "
            "it holds back.",
    "model": "The aggregate id is `model_aggregate_id(model)`; `usage.record` prices usage "
             "with `price_at` at the time of use and freezes that price into "
             "`UsageRecorded`.",
    "budget": "Runs draw on a budget through `budget_id`: `task.submit` for such a run needs "
              "the budget's `require_room()`, and usage is charged with `charge` atomically "
              "with the run's `UsageRecorded`.",
}


def render() -> str:
    """Returns the whole document."""
    total = sum(len(m.table.states) for m in MACHINES.values())
    head = [
        "# State machines",
        "",
        "Generated from the transition tables in `services/domain/` by "
        "`python -m services.docs.state_machines`; edit the tables, not this file.",
        "",
        f"{len(MACHINES)} machines, {total} states. An event that does not fit its "
        "aggregate's table is never written, and a stored history that breaks it fails "
        "to load (`InvalidHistory`).",
    ]
    sections = [_section(machine) for machine in MACHINES.values()]
    return "\n".join([*head, *sections]) + "\n"


def _section(machine: Machine[Any]) -> str:
    table = machine.table
    summary = (sys.modules[machine.decide.__module__].__doc__ or "").strip().splitlines()[0]
    terminal = ", ".join(f"`{s}`" for s in table.states if s in table.terminal) or "none"
    lines = [
        "",
        f"## {_TITLES.get(machine.name, machine.name)} (`{machine.name}`)",
        "",
        summary,
        "",
        f"- States ({len(table.states)}): " + ", ".join(f"`{s}`" for s in table.states),
        f"- Terminal: {terminal}",
        "- Commands: " + ", ".join(f"`{s}`" for s in _commands(machine.name)),
        f"- Cross-aggregate rules: {_CROSS_AGGREGATE.get(machine.name, 'none.')}",
        "",
        "| from | event | to |",
        "|---|---|---|",
        *(f"| {source or '(new)'} | `{event}` | {' or '.join(targets_of(target))} |"
          for (source, event), target in table.edges.items()),
        "",
        *_mermaid(table),
    ]
    return "\n".join(lines)


def _commands(aggregate: str) -> list[str]:
    return [subject for subject, cls in COMMANDS.items() if cls.aggregate == aggregate]


def _mermaid(table: TransitionTable) -> list[str]:
    edges = [
        f"    {source or '[*]'} --> {state}: {event}"
        for (source, event), target in table.edges.items() for state in targets_of(target)
    ]
    ends = [f"    {state} --> [*]" for state in table.states if state in table.terminal]
    return ["```mermaid", "stateDiagram-v2", *edges, *ends, "```"]


def main(argv: list[str] | None = None) -> int:
    """Writes the document (or, with ``--check``, reports whether it is stale)."""
    return write_or_check(DOC_PATH, render(), "python -m services.docs.state_machines",
                          sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    raise SystemExit(main())
