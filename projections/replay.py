"""Replay and time travel: rebuild the read models from the log into a fresh file.

``build_read_models`` always builds into a new file beside the destination and moves it
into place with ``os.replace`` (atomic on one filesystem), so readers see the old file
or the new one, never half of either. Old-schema events are upcast on the way, exactly
as the live projector does.

A rebuild of the live file refuses (``ReplayRefused``) while another process holds it:
a running ``runlog up`` owns that file, and rebuilds it itself on request (it pauses its
projector, swaps the file and resumes; see ``projections.service``). Time travel
(``until_seq`` / ``until``) never touches the live file: it builds the past into a
file of its own, which ``runlog sql --db`` can query. A bound outside the log (before
its first event, after its last) is refused before anything is built.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import psutil

from events.codec import CODEC, EventCodec
from services.store import RecordedEvent
from services.store.port import EventStore

from .database import ReadModelDb, is_lock_conflict
from .decode import DecodeError, decode
from .errors import BoundOutsideLog, ProjectionError, ReplayRefused
from .models import REPLAY_CACHE_ROWS, Projection, default_projections
from .replay_reader import build_in_two_processes, started_applier
from .runtime import Progress, Projector, ProjectorConfig
from .schema import record_build

__all__ = [
    "REPLAY_CONFIG",
    "ReplayResult",
    "as_of_path",
    "build_read_models",
    "check_bounds",
    "ensure_not_held",
    "idle_cpus",
    "swap_into_place",
    "worth_two_processes",
]

REPLAY_CONFIG = ProjectorConfig(batch_size=20_000, max_batch_size=20_000, linger_s=0.2)
"""Big batches: a replay is throughput-bound, and every transaction has a fixed cost. Not
bigger than 20,000 however far behind: a batch is held decoded in memory, and letting it
grow tenfold with the lag cost 120 MB of peak RSS on a 300k-event replay (493 against 374
MB) for no gain in speed (26.4 against 27.1 s)."""


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What a rebuild produced."""

    path: Path
    position: int
    """The last stream sequence the file includes."""
    seconds: float
    until_seq: int | None = None
    until: datetime | None = None
    note: str | None = None
    """What a person should know about the bound (a time after the log's last event)."""

    def describe(self) -> str:
        """One line for people."""
        bound = ""
        if self.until_seq is not None:
            bound = f" (until seq {self.until_seq})"
        elif self.until is not None:
            bound = f" (until {self.until.isoformat()})"
        note = f"; {self.note}" if self.note else ""
        return (f"read models rebuilt up to seq {self.position}{bound} in {self.seconds:.2f} s"
                f" -> {self.path}{note}")


def as_of_path(db_path: Path, until_seq: int | None = None, until: datetime | None = None) -> Path:
    """Returns where the time-travel file for this bound lives, beside the live file."""
    if until_seq is not None:
        name = f"asof-seq-{until_seq}.duckdb"
    elif until is not None:
        name = f"asof-{until.astimezone(UTC).strftime('%Y%m%dT%H%M%S%fZ')}.duckdb"
    else:
        raise ValueError("a time-travel build needs until_seq or until")
    return db_path.parent / name


async def build_read_models(
    store: EventStore,
    dest: Path,
    until_seq: int | None = None,
    until: datetime | None = None,
    progress: Progress | None = None,
    config: ProjectorConfig | None = None,
    projections: list[Projection] | None = None,
    codec: EventCodec = CODEC,
    processes: int | None = None,
) -> ReplayResult:
    """Builds every read model from the log (up to a bound) and moves the file to ``dest``.

    ``processes``: 2 reads in this process and applies in another (``replay_reader``), 1
    does both here; None chooses (``worth_two_processes``). Custom projections, codec or
    batching always build here.
    """
    if until is not None and until.tzinfo is None:
        until = until.replace(tzinfo=UTC)
    note = None
    if until_seq is not None or until is not None:
        note = await check_bounds(store, until_seq, until, codec)
    started = time.monotonic()
    building = _fresh(dest.with_name(f"{dest.name}.building-{os.getpid()}"))
    target = await _target(store, until_seq)
    try:
        position = None
        if config is None and projections is None and codec is CODEC and processes != 1 and (
                processes == 2 or worth_two_processes(target, idle=math.inf)):
            position = await _build_in_two_processes_if_idle(
                store, building, target, until_seq, until, progress, processes == 2)
        if position is None:
            position = await _build_here(store, building, until_seq, until, progress, config,
                                         projections, codec)
        swap_into_place(building, dest)
    except BaseException:
        _fresh(building)  # half built, or refused its place: of no use to anyone
        raise
    return ReplayResult(dest, position, time.monotonic() - started, until_seq, until, note)


TWO_PROCESSES_FROM = 100_000
"""Events a replay needs before a second process can pay for its start (a second or two)."""
IDLE_SAMPLE_S = 0.2
"""How long the CPUs are watched before a long replay chooses one process or two."""


def worth_two_processes(events: int, idle: float) -> bool:
    """Whether a replay of ``events`` should read and apply in two processes, with ``idle``
    CPUs idle now.

    Only with a CPU idle to overlap on: on a busy machine the two halves take turns on
    the same cores and the framing between them is pure cost (measured on a loaded 2-core
    machine: 15-20 % slower than one process; on the same machine idle, 200,000 events,
    three rounds each way in alternation: 15.8-20.3k events/s against 13.6-18.0k).
    """
    return events >= TWO_PROCESSES_FROM and (os.cpu_count() or 1) > 1 and idle >= 1.0


async def idle_cpus(sample_s: float = IDLE_SAMPLE_S, beside: int | None = None) -> float:
    """How many CPUs are idle now, from a short sample of every CPU's time.

    Not the load average: it trails the last minute, so a replay right after a busy
    spell (another replay, a benchmark) would still see the cores taken. ``beside``: a
    process of this replay (its applier, starting) whose CPU time in the sample counts
    as idle, since the replay would be using it either way.
    """
    return await asyncio.to_thread(_idle_over, sample_s, beside)


def _idle_over(sample_s: float, beside: int | None) -> float:
    cpus = os.cpu_count() or 1
    ours = _cpu_s(beside)
    busy_percent = psutil.cpu_percent(sample_s)
    ours = _cpu_s(beside) - ours
    return min(float(cpus), cpus * (100.0 - busy_percent) / 100.0 + max(0.0, ours) / sample_s)


def _cpu_s(pid: int | None) -> float:
    """A process's CPU seconds so far (0 for none, or one that has gone)."""
    if pid is None:
        return 0.0
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


async def _build_in_two_processes_if_idle(
        store: EventStore, building: Path, target: int, until_seq: int | None,
        until: datetime | None, progress: Progress | None, forced: bool) -> int | None:
    """Builds in two processes unless no CPU is idle (``forced``: whatever the CPUs);
    None when it did not, with nothing left of the attempt.

    The applier starts before the CPUs are sampled, so its start-up overlaps the sample
    (0.2 s of a 6 s replay of 200,000 events); the CPU it takes meanwhile counts as idle.
    """
    async with started_applier(building, until, until_seq) as applier:
        if forced or worth_two_processes(target, await idle_cpus(beside=applier.pid)):
            return await build_in_two_processes(store, applier, target, progress)
    _fresh(building)  # the applier may have created the file before it was stopped
    return None


async def _target(store: EventStore, until_seq: int | None) -> int:
    """The last event a build reads: the bound, or the last message the log still holds."""
    last = await store.last_on_subject(f"{store.subject_prefix}.>")
    head = last.seq if last is not None else 0
    return head if until_seq is None else min(until_seq, head)


async def _build_here(store: EventStore, building: Path, until_seq: int | None,
                      until: datetime | None, progress: Progress | None,
                      config: ProjectorConfig | None, projections: list[Projection] | None,
                      codec: EventCodec) -> int:
    """The build in this process alone (custom projections, codec or batching)."""
    if projections is None:
        projections = default_projections(REPLAY_CACHE_ROWS)
    db = ReadModelDb.open_writer(building, projections)
    try:
        projector = Projector(store, db, config or REPLAY_CONFIG, projections, codec,
                              name="replay")
        position = await projector.catch_up(until_seq, until, progress)
        record_build(db.con, position, until_seq, until)
    finally:
        db.close()
    return position


async def check_bounds(store: EventStore, until_seq: int | None = None,
                       until: datetime | None = None, codec: EventCodec = CODEC) -> str | None:
    """Raises ``BoundOutsideLog`` unless the bound lies between the log's first and last events
    (a time after the last one, up to now, is the state as of the last: the note says so)."""
    events = f"{store.subject_prefix}.>"
    first, last = await store.first_on_subject(events), await store.last_on_subject(events)
    if first is None or last is None:
        raise BoundOutsideLog("the log holds no events: there is no past state to build")
    if until_seq is not None:
        _check_seq(until_seq, first.seq, last.seq)
    return _check_time(until, first, last, codec) if until is not None else None


def _check_seq(until_seq: int, first: int, last: int) -> None:
    if until_seq < first:
        lost = "; the events before it were deleted or purged" if first > 1 else ""
        raise BoundOutsideLog(f"seq {until_seq} is before the first event the log holds "
                              f"(seq {first}){lost}: that state cannot be built")
    if until_seq > last:
        raise BoundOutsideLog(f"seq {until_seq} is past the last event of the log (seq {last}): "
                              "the state there is the current one (replay without a bound)")


def _check_time(until: datetime, first: RecordedEvent, last: RecordedEvent,
                codec: EventCodec) -> str | None:
    now = datetime.now(UTC)
    if until > now:
        raise BoundOutsideLog(f"{until.isoformat()} is in the future (now is {now.isoformat()}): "
                              "the state then is not known yet")
    began, ended = _when(first, codec), _when(last, codec)
    if began is not None and until < began:
        raise BoundOutsideLog(f"{until.isoformat()} is before the first event the log holds "
                              f"(seq {first.seq}, {began.isoformat()}): that state cannot be built")
    if ended is not None and until > ended:
        return (f"the log's last event (seq {last.seq}, {ended.isoformat()}) is before "
                f"{until.isoformat()}: this is the state as of that event")
    return None


def _when(record: RecordedEvent, codec: EventCodec) -> datetime | None:
    """When an event occurred; None for an event that cannot be read (it bounds nothing)."""
    try:
        return decode(record, codec).when
    except DecodeError:
        return None


def swap_into_place(built: Path, dest: Path) -> None:
    """Moves a closed, checkpointed file over ``dest``; refuses while a process holds ``dest``."""
    ensure_not_held(dest)
    _fresh(Path(f"{dest}.wal"))  # a WAL beside the old file would be replayed onto the new one
    os.replace(built, dest)


def ensure_not_held(path: Path) -> None:
    """Raises ``ReplayRefused`` while another process holds the file."""
    if not path.exists():
        return
    # Opening it read-write is the only reliable test, and it folds any leftover WAL in.
    try:
        duckdb.connect(str(path)).close()
    except duckdb.Error as error:
        if is_lock_conflict(error):
            raise ReplayRefused(
                f"{path} is held by a running runlog: stop it, or let it rebuild its own "
                "read models (runlog replay asks a running service to do so)"
            ) from None
        raise ProjectionError(f"cannot open {path}: {str(error).splitlines()[0]}") from None


def _fresh(path: Path) -> Path:
    for stale in (path, Path(f"{path}.wal")):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
    return path
