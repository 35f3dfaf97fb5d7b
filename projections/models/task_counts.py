"""A run's tasks by state (``runs.task_counts``, ``tasks_total``), kept from each batch's moves.

A batch knows every task it changed and the state each was in before, so the counts of
the runs it touched move by those differences: counts cached from earlier batches are
moved in Python and written back through a kept appender, and only a run not cached is
counted in SQL (its tasks read through the index on ``tasks.run_id``, after the batch's
own rows are written, so that count already holds the batch). A 17-event batch of task
events spent 6.3 ms of CPU on the ``MERGE`` that recounted every touched run; moving
cached counts costs it the update alone. A batch touching more runs than an appender
takes recounts them all in SQL, as a replay's do. Entries are kept in state order:
DuckDB compares and hashes MAPs entry by entry, so a rebuild must write the same order.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping

import duckdb

from .appenders import KEPT_UPDATER_ROWS, update_values
from .base import remember_recent

__all__ = ["RunTaskCounts", "TaskMove"]

TaskMove = tuple[tuple[str | None, str | None], tuple[str | None, str | None]]
"""One task's (run, state) before a batch and after it."""

# A MERGE over a list parameter: the index on tasks.run_id then reads only the tasks of
# those runs. The UPDATE ... FROM over a registered table it replaces read every task,
# so a batch's cost grew with the table: 5.4 ms at 30,000 tasks, 12 ms at 300,000 and
# 55-70 ms at 3,000,000, against 2.9-4.6 ms at either end now.
_LOAD_SQL = """
SELECT run_id, state, count(*) AS n FROM tasks
WHERE run_id IN (SELECT unnest($runs::VARCHAR[])) GROUP BY run_id, state
"""
_COUNT_SQL = f"""
MERGE INTO runs USING (
    SELECT run_id, map_from_entries(list({{'k': state, 'v': n}} ORDER BY state)) AS counts,
           sum(n) AS total
    FROM ({_LOAD_SQL})
    GROUP BY run_id
) AS c ON runs.run_id = c.run_id
WHEN MATCHED THEN UPDATE SET task_counts = c.counts, tasks_total = c.total
"""
_COLUMNS = ("run_id", "tasks_total", "task_counts")


class RunTaskCounts:
    """The task counts of recently touched runs, and their upkeep inside a batch."""

    def __init__(self) -> None:
        self._cache: OrderedDict[str, Counter[str]] = OrderedDict()

    def reset(self) -> None:
        """Forgets every cached count (its transaction was rolled back)."""
        self._cache.clear()

    def apply(self, con: duckdb.DuckDBPyConnection, moves: Iterable[TaskMove],
              cache_runs: int) -> None:
        """Moves the counts of the runs these tasks left or joined, once the tasks are
        written; keeps the counts of at most ``cache_runs`` runs."""
        deltas: dict[str, Counter[str]] = {}
        for (run_before, state_before), (run_after, state_after) in moves:
            if (run_before, state_before) == (run_after, state_after):
                continue
            if run_before is not None and state_before is not None:
                deltas.setdefault(run_before, Counter())[state_before] -= 1
            if run_after is not None and state_after is not None:
                deltas.setdefault(run_after, Counter())[state_after] += 1
        if not deltas:
            return
        if len(deltas) > KEPT_UPDATER_ROWS:
            con.execute(_COUNT_SQL, {"runs": sorted(deltas)})
            for run_id in deltas:
                self._cache.pop(run_id, None)
            return
        counts = self._moved(con, deltas)
        update_values(con, "runs", "run_id", _COLUMNS,
                      [(run_id, sum(c.values()), _in_order(c)) for run_id, c in counts.items()])
        remember_recent(self._cache, counts, cache_runs)

    def _moved(self, con: duckdb.DuckDBPyConnection, deltas: Mapping[str, Counter[str]]
               ) -> dict[str, Counter[str]]:
        """Each run's counts after the batch: a cached one moved, the others counted."""
        counts: dict[str, Counter[str]] = {}
        missing = []
        for run_id, delta in deltas.items():
            cached = self._cache.get(run_id)
            if cached is None:
                missing.append(run_id)
                continue
            moved = Counter(cached)
            moved.update(delta)
            counts[run_id] = moved
        if missing:
            found: dict[str, Counter[str]] = {run_id: Counter() for run_id in missing}
            for run_id, state, n in con.execute(_LOAD_SQL, {"runs": missing}).fetchall():
                if state is not None:
                    found[run_id][state] = n
            counts.update(found)
        return counts


def _in_order(counts: Counter[str]) -> dict[str, int]:
    """The states with tasks in them, in state order (as the SQL count writes them)."""
    return {state: n for state, n in sorted(counts.items()) if n}
