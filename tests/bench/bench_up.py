"""The whole ``runlog up`` against its floors, in one run: ``python tests/bench/bench_up.py``.

Reports, never asserts. Every figure is printed as a ratio against its baseline,
measured in the same run, with its target and a pass/short mark:

- commands: ``runlog up`` as a user starts it (a subprocess on a fresh data
  directory, embedded NATS, projectors, policies and HTTP on) against a bare
  nats-py responder doing one OCC append per request (its own process, its own
  nats-server), the same load generator (``command_load.py``, its own process,
  64 clients driving run lifecycles) on both; then the same command mix on the
  ``eventsourcing`` library with PostgreSQL (127.0.0.1:5432, database ``test``)
  and with SQLite. CPU µs/command is user + system time of the process tree
  under test (read from /proc; a child process of the service counts with it,
  its embedded nats-server is shown apart) over the measured window, which ends
  when the read side has caught up with the last reply. Rounds alternate the
  contenders and the best round of each is kept, because the machine is shared.
- freshness: at a paced 1,000 commands/s, the time from a command's event to its row
  being visible, three ways, each on a fresh ``runlog up``: as the service itself
  measures it with no query load (each event's age when its batch commits, from the
  ``runlog_projector_freshness_seconds`` histogram of ``/metrics``: an upper bound of
  reply -> visible, since a reply follows its event's storing); every 10th reply's run
  row read back with ``wait_seq`` (as a client reading its own writes; exact per
  command); and the read-model position polled every 10 ms, one query at a time (the
  first answer that includes a reply dates it). The last two send about 100 queries a
  second, which the read side answers with the CPU it projects with.
- replay: ``runlog replay`` (a subprocess) against an ordered consumer that only
  ``json.loads`` each event (its own process), on the same stream.
- memory: peak RSS of ``runlog replay`` rebuilding 1M events (generated with raw
  ``js.publish_async`` of valid events into a scratch stream).

Options: ``--quick`` (tiny sizes: a smoke run of seconds), ``--only SECTION,...``,
``--rounds N``, ``--postgres off``, ``--profile`` (a py-spy profile of one extra
``runlog up`` round, with its hottest functions), ``--json FILE``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeVar

import nats

if __package__ in (None, ""):  # run as a script: make the project root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from projections.freshness import FreshnessHistogram
from services.embedded_nats import EmbeddedNats
from services.store import JetStreamEventStore
from tests.bench.bench_projections import fill
from tests.bench.common import process_rss_bytes, process_tree_cpu_s
from tests.bench.es_baseline import postgres_available
from tests.bench.up_process import ROOT, RunlogUp, runlog_env, sql_query

HERE = Path(__file__).resolve().parent
SECTIONS = ("commands", "freshness", "replay", "memory")
Result = dict[str, float]
POLL_MS = 10.0
"""How often the freshness section's poll asks the read side for its position."""
PROBE_EVERY = 10
"""The freshness section's read-your-writes round reads back every this many replies
(100 queries/s at 1,000 commands/s: as many as the poll every 10 ms)."""
THREAD_KEY = "cpu_us_in "
"""Result keys of the CPU µs/command spent in one process's main thread or other threads."""
SATURATED = 0.85
"""Past this share of a core the load generator itself limits commands/s (it is flagged)."""
IDLE_SAMPLE_S = 1.0
"""How long ``runlog up``'s CPU is read while idle, before each load (shown beside it)."""


@dataclass(frozen=True)
class Sizes:
    """How much each section does."""

    clients: int = 64
    runs: int = 16
    """Run lifecycles per client (7 commands each)."""
    rounds: int = 3
    es_threads: int = 8
    fresh_rate: float = 1000.0
    fresh_seconds: float = 15.0
    replay_events: int = 200_000
    replay_rounds: int = 2
    memory_events: int = 1_000_000


QUICK = Sizes(clients=8, runs=2, rounds=1, es_threads=2, fresh_seconds=0.5,
              replay_events=2_000, replay_rounds=1, memory_events=5_000)


# --- commands ----------------------------------------------------------------------------

def run_load(url: str, sizes: Sizes, tag: str, runs: int | None = None,
             rate: float | None = None, poll_ms: float = 0, probe_every: int = 0) -> Result:
    """The load generator in its own process; its JSON result."""
    command = [sys.executable, str(HERE / "command_load.py"), url, "--clients",
               str(sizes.clients), "--runs", str(runs or sizes.runs), "--tag", tag]
    if rate is not None:
        command += ["--rate", str(rate), "--poll-ms", str(poll_ms),
                    "--probe-every", str(probe_every)]
    return child_json(command)


def child_json(command: list[str]) -> Result:
    """Runs a benchmark child process to its end; its one JSON line (its stderr on failure)."""
    out = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"{Path(command[1]).name} failed ({out.returncode}):\n{out.stderr}")
    result: Result = json.loads(out.stdout)
    return result


def with_cpu(result: Result, service_s: float, nats_s: float) -> Result:
    commands = max(1.0, result["commands"])
    return result | {"cpu_us_per_command": service_s / commands * 1e6,
                     "nats_us_per_command": nats_s / commands * 1e6}


def runlog_round(folder: Path, sizes: Sizes, tag: str, rate: float | None = None,
                 poll_ms: float = 0, profile: Path | None = None, probe_every: int = 0
                 ) -> Result:
    """One ``runlog up`` on a fresh data dir under the load; CPU until the read side caught up."""
    up = RunlogUp(folder / f"up-{tag}")
    try:
        url = up.wait_ready()
        runs = math.ceil(rate * sizes.fresh_seconds / 7 / sizes.clients) if rate else None
        idle = up.cpu_s()[0]
        time.sleep(IDLE_SAMPLE_S)
        idle_share = (up.cpu_s()[0] - idle) / IDLE_SAMPLE_S
        with py_spy(up.pid, profile):
            fresh_before = up.freshness()
            before, threads_before = up.cpu_s(), up.threads_cpu_s()
            result = run_load(url, sizes, tag, runs, rate, poll_ms, probe_every)
            started = time.perf_counter()
            reply = asyncio.run(sql_query(url, "SELECT count(*) FROM runs",
                                          int(result["last_seq"])))
            result["catch_up_s"] = time.perf_counter() - started
            result["failures"] += not reply.get("ok")
            up.wait_quiet()
            after, threads_after = up.cpu_s(), up.threads_cpu_s()
            fresh = up.freshness().minus(fresh_before)
    finally:
        up.stop()
    result |= service_freshness(fresh)
    result["idle_cpu_share"] = idle_share
    commands = max(1.0, result["commands"])
    result |= {f"{THREAD_KEY}{where}": (seconds - threads_before.get(where, 0.0)) / commands * 1e6
               for where, seconds in threads_after.items()}
    return with_cpu(result, after[0] - before[0], after[1] - before[1])


def service_freshness(fresh: FreshnessHistogram) -> Result:
    """The round's events' freshness as the read side counted it (ms; p50 and p99)."""
    figures: Result = {"service_fresh_events": float(fresh.count)}
    for p in (50, 99):
        value = fresh.quantile(p / 100)
        if value is not None:
            figures[f"service_fresh_p{p}_ms"] = value * 1e3
    return figures


def raw_round(folder: Path, sizes: Sizes, tag: str) -> Result:
    """The bare responder (its own process, its own nats-server) under the same load."""
    with EmbeddedNats(folder / f"raw-{tag}") as server:
        assert server.process is not None
        responder = subprocess.Popen([sys.executable, str(HERE / "raw_responder.py"),
                                      server.url, f"RAW_{tag.upper()}"], cwd=ROOT,
                                     stdout=subprocess.PIPE, text=True)
        try:
            assert responder.stdout is not None
            if responder.stdout.readline() != "ready\n":
                raise RuntimeError("the raw responder did not start")
            before = (process_tree_cpu_s(responder.pid), process_tree_cpu_s(server.process.pid))
            result = run_load(server.url, sizes, tag)
            after = (process_tree_cpu_s(responder.pid), process_tree_cpu_s(server.process.pid))
        finally:
            responder.terminate()
            responder.wait(timeout=30)
    shutil.rmtree(folder / f"raw-{tag}", ignore_errors=True)
    return with_cpu(result, after[0] - before[0], after[1] - before[1])


def es_round(sizes: Sizes, backend: str) -> Result:
    """The eventsourcing library in its own process, the same number of lifecycles."""
    return child_json([sys.executable, str(HERE / "es_baseline.py"), "--backend", backend,
                       "--runs", str(sizes.clients * sizes.runs),
                       "--threads", str(sizes.es_threads)])


def bench_commands(folder: Path, sizes: Sizes, postgres: bool) -> dict[str, Result]:
    contenders: dict[str, Callable[[int], Result]] = {
        "runlog up": lambda n: runlog_round(folder, sizes, f"u{n}"),
        "raw responder": lambda n: raw_round(folder, sizes, f"r{n}"),
        "ES+SQLite": lambda n: es_round(sizes, "sqlite")}
    if postgres:
        contenders["ES+PostgreSQL"] = lambda n: es_round(sizes, "postgres")
    best: dict[str, Result] = {}
    for n in range(sizes.rounds):
        print(f"commands, round {n + 1} of {sizes.rounds}", flush=True)
        for name, measure in contenders.items():
            try:
                result = measure(n)
            except RuntimeError as error:  # one bad round must not lose the whole run
                print(f"  {name:<15} round failed, not counted: {error}", flush=True)
                continue
            show(name, result)
            if result["commands_per_s"] > best.get(name, {}).get("commands_per_s", 0):
                best[name] = result
    return best


def show(name: str, result: Result) -> None:
    nats_cpu = (f" + nats-server {result['nats_us_per_command']:,.0f}"
                if "nats_us_per_command" in result else "")
    if "idle_cpu_share" in result:
        nats_cpu += f" (idle {result['idle_cpu_share']:.0%} of a core)"
    if result.get("client_cpu_share", 0) > SATURATED:
        nats_cpu += f"  [load generator at {result['client_cpu_share']:.0%} of a core]"
    print(f"  {name:<15} {result['commands_per_s']:>7,.0f} commands/s  CPU "
          f"{result['cpu_us_per_command']:>6,.0f} µs/command{nats_cpu}  "
          f"p50 {result['p50_ms']:.1f} ms  p99 {result['p99_ms']:.1f} ms"
          f"{'  FAILURES ' + str(int(result['failures'])) if result['failures'] else ''}",
          flush=True)
    spread = [(key.removeprefix(THREAD_KEY), us) for key, us in result.items()
              if key.startswith(THREAD_KEY) and us >= 1]
    if spread:
        print("  " + " " * 15 + " CPU µs/command by thread: "
              + ", ".join(f"{where} {us:,.0f}" for where, us in spread), flush=True)


# --- profile -----------------------------------------------------------------------------

@contextlib.contextmanager
def py_spy(pid: int, out: Path | None) -> Iterator[None]:
    """``py-spy record`` of ``pid`` and its children for the block (None: no profile)."""
    spy = None
    if out is not None:
        spy = subprocess.Popen(["py-spy", "record", "--pid", str(pid), "--subprocesses",
                                "--nonblocking", "--rate", "200", "--format", "raw",
                                "-o", str(out)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # attached before the load starts
    try:
        yield
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)


def py_spy_path() -> str | None:
    return shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))


Shares = list[tuple[str, float]]


def area(frame: str) -> str:
    """The package a frame's code lives in (two levels for runlog's own)."""
    found = re.search(r"\(([^)]*?)(?::\d+)?\)$", frame)
    parts = (found[1] if found else frame).split("/")
    depth = 2 if parts[0] in ("services", "projections") and len(parts) > 2 else 1
    return "/".join(parts[:depth]).removesuffix(".py")


def hottest(profile: Path, top: int = 15) -> tuple[Shares, Shares, Shares]:
    """(self, inclusive, self by package) shares of samples, from py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    total = 0
    for line in profile.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [re.sub(r":\d+\)$", ")", frame) for frame in stack.split(";")]
        frames = [frame for frame in frames if not frame.startswith(("process ", "thread "))]
        total += count
        if frames:
            own[frames[-1]] += count
            areas[area(frames[-1])] += count
        for frame in set(frames):
            inclusive[frame] += count
    total = max(total, 1)
    return ([(name, n / total) for name, n in own.most_common(top)],
            [(name, n / total) for name, n in inclusive.most_common(top * 3)],
            [(name, n / total) for name, n in areas.most_common(top)])


def bench_profile(folder: Path, sizes: Sizes) -> dict[str, object]:
    spy = py_spy_path()
    if spy is None:
        print("profile: py-spy is not installed (pip install py-spy); skipped")
        return {"skipped": "py-spy not installed"}
    os.environ["PATH"] = f"{Path(spy).parent}{os.pathsep}{os.environ['PATH']}"
    out = folder / "runlog-up.pyspy.txt"
    result = runlog_round(folder, sizes, "prof", profile=out)
    if not out.exists():
        print("profile: py-spy wrote nothing (ptrace not permitted?); skipped")
        return {"skipped": "py-spy wrote no profile"}
    kept = Path(tempfile.gettempdir()) / "runlog-bench-up.pyspy.txt"
    shutil.copy(out, kept)
    own, inclusive, areas = hottest(out)
    print(f"\nprofile of one more runlog up round under py-spy ({result['commands']:.0f} "
          f"commands, {result['commands_per_s']:,.0f}/s while sampled), collapsed stacks in "
          f"{kept}\n  self time by package:")
    for name, share in areas:
        print(f"    {share:6.1%}  {name}")
    print("  self time by function:")
    for name, share in own:
        print(f"    {share:6.1%}  {name}")
    print("  inclusive (runlog, faststream, nats, duckdb frames):")
    ours = [(n, s) for n, s in inclusive if re.search(r"runlog|services|projections|faststream|"
                                                      r"nats/|duckdb|fast_depends|pydantic", n)]
    for name, share in ours[:20]:
        print(f"    {share:6.1%}  {name}")
    return {"path": str(kept), "self": own, "inclusive": ours[:20], "areas": areas}


# --- freshness ---------------------------------------------------------------------------

def bench_freshness(folder: Path, sizes: Sizes) -> dict[str, Result]:
    """Event -> row visible at a paced rate, three ways, each on a fresh ``runlog up``: as
    the service counts it with no queries, rows read back with ``wait_seq`` (a client
    reading its own writes), and the position polled."""
    print(f"freshness at a paced {sizes.fresh_rate:,.0f} commands/s for "
          f"{sizes.fresh_seconds:g} s", flush=True)
    quiet = runlog_round(folder, sizes, "fresh-quiet", rate=sizes.fresh_rate)
    show("runlog up", quiet)
    print_service_freshness(quiet, "no queries")
    probed = runlog_round(folder, sizes, "fresh-ryw", rate=sizes.fresh_rate,
                          probe_every=PROBE_EVERY)
    show("runlog up", probed)
    print_service_freshness(probed, f"{PROBE_EVERY}th replies read back")
    errors = int(probed["probe_errors"])
    print(f"  reply -> own row read back (wait_seq): p50 {probed['probe_p50_ms']:.1f} ms, "
          f"p99 {probed['probe_p99_ms']:.1f} ms over {probed['probe_samples']:.0f} replies "
          f"(every {PROBE_EVERY}th){f'; {errors} refused or short' if errors else ''}",
          flush=True)
    polled = runlog_round(folder, sizes, "fresh-poll", rate=sizes.fresh_rate, poll_ms=POLL_MS)
    show("runlog up", polled)
    print_service_freshness(polled, f"polled every {POLL_MS:g} ms")
    errors = int(polled["fresh_errors"])
    print(f"  reply -> position polled past it: p50 {polled['fresh_p50_ms']:.1f} ms, p99 "
          f"{polled['fresh_p99_ms']:.1f} ms over {polled['fresh_samples']:.0f} replies "
          f"(every {POLL_MS:g} ms; one poll takes {polled['poll_p50_ms']:.1f} ms at p50)"
          f"{f'; {errors} polls refused' if errors else ''}")
    return {"service, no queries": quiet, "read your writes": probed, "position poll": polled}


def print_service_freshness(result: Result, load: str) -> None:
    print(f"  event stored -> visible, as the read side counts it ({load}): p50 "
          f"{result.get('service_fresh_p50_ms', float('nan')):.1f} ms, p99 "
          f"{result.get('service_fresh_p99_ms', float('nan')):.1f} ms over "
          f"{result.get('service_fresh_events', 0):,.0f} events", flush=True)


def freshness_figures(fresh: dict[str, Result], rate: float) -> list[Figure]:
    quiet = fresh.get("service, no queries", {})
    probed, polled = fresh.get("read your writes", {}), fresh.get("position poll", {})
    return [
        *(limit(f"freshness p{p} at {rate:,.0f}/s, no queries",
                quiet.get(f"service_fresh_p{p}_ms"), 50, "ms") for p in (50, 99)),
        *(limit(f"freshness p{p} at {rate:,.0f}/s, read back", probed.get(f"probe_p{p}_ms"),
                50, "ms") for p in (50, 99)),
        *(limit(f"freshness p{p} at {rate:,.0f}/s, polled", polled.get(f"fresh_p{p}_ms"),
                50, "ms") for p in (50, 99)),
    ]


# --- replay and memory -------------------------------------------------------------------

@contextlib.contextmanager
def filled_server(folder: Path, events: int) -> Iterator[str]:
    """A scratch nats-server whose ``RUNLOG`` stream holds ``events`` valid events."""
    with EmbeddedNats(folder / "nats") as server:
        asyncio.run(_fill(server.url, events))
        yield server.url
    shutil.rmtree(folder, ignore_errors=True)


async def _fill(url: str, events: int) -> None:
    nc = await nats.connect(url)
    store = JetStreamEventStore(nc)
    await store.ensure_stream()
    started = time.perf_counter()
    rate = await fill(store, events)
    print(f"  filled {events:,} events in {time.perf_counter() - started:.1f} s "
          f"({rate:,.0f}/s, js.publish_async)", flush=True)
    await nc.close()


def ordered_reader(url: str) -> Result:
    return child_json([sys.executable, str(HERE / "ordered_reader.py"), url, "RUNLOG",
                       "runlog.evt.>"])


_REBUILT = re.compile(r"up to seq (\d+).* in ([\d.]+) s")


def runlog_replay(url: str, data_dir: Path) -> Result:
    """``runlog replay`` in its own process: events/s (its own timing) and its peak RSS."""
    env = runlog_env(data_dir, {"RUNLOG_NATS_URL": url})
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "services.cli", "replay", "--quiet"],
                               env=env, cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    peak = [0, 0]
    sampler = threading.Thread(target=_sample_rss, args=(process, peak), daemon=True)
    sampler.start()
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    sampler.join()
    shutil.rmtree(data_dir, ignore_errors=True)
    if process.returncode != 0:
        raise RuntimeError(f"runlog replay failed ({process.returncode}): {output}")
    found = _REBUILT.search(output)
    events, seconds = (int(found[1]), float(found[2])) if found else (0, wall)
    return {"events": events, "seconds": seconds, "events_per_s": events / seconds,
            "wall_s": wall, "peak_rss_mb": max(peak[0], usage.ru_maxrss * 1024) / 2 ** 20,
            "peak_rss_largest_process_mb": max(peak[1], usage.ru_maxrss * 1024) / 2 ** 20}


def _sample_rss(process: subprocess.Popen[str], peak: list[int]) -> None:
    """Peak RSS of the replay's process tree (summed, and its largest process), every 50 ms."""
    while process.returncode is None:
        with contextlib.suppress(OSError):
            sizes = process_rss_bytes(process.pid) or [0]
            peak[0], peak[1] = max(peak[0], sum(sizes)), max(peak[1], max(sizes))
        time.sleep(0.05)


def bench_replay(folder: Path, sizes: Sizes) -> dict[str, Result]:
    print(f"replay of {sizes.replay_events:,} events", flush=True)
    best: dict[str, Result] = {}
    with filled_server(folder / "replay", sizes.replay_events) as url:
        for n in range(sizes.replay_rounds):
            for name, result in (("ordered consumer", ordered_reader(url)),
                                 ("runlog replay", runlog_replay(url, folder / f"rp{n}"))):
                print(f"  round {n + 1}: {name:<16} {result['events_per_s']:>9,.0f} events/s"
                      f" ({result['events']:,.0f} events in {result['seconds']:.2f} s)",
                      flush=True)
                if result["events_per_s"] > best.get(name, {}).get("events_per_s", 0):
                    best[name] = result
    return best


def bench_memory(folder: Path, sizes: Sizes) -> Result:
    print(f"memory: runlog replay of {sizes.memory_events:,} events", flush=True)
    with filled_server(folder / "memory", sizes.memory_events) as url:
        result = runlog_replay(url, folder / "rpm")
    print(f"  {result['events']:,.0f} events in {result['seconds']:.1f} s "
          f"({result['events_per_s']:,.0f}/s); peak RSS {result['peak_rss_mb']:,.0f} MB "
          f"(its processes summed; the largest one alone "
          f"{result['peak_rss_largest_process_mb']:,.0f} MB)",
          flush=True)
    return result


# --- the figures -------------------------------------------------------------------------

@dataclass(frozen=True)
class Figure:
    """One line of the report: ours, its baseline, ratio (higher is better), target, mark."""

    name: str
    ours: float | None
    baseline: float | None
    unit: str
    ratio: float | None
    target: str
    mark: str


def figure(name: str, ours: float | None, baseline: float | None, unit: str,
           lower_is_better: bool = False, target: float | None = None) -> Figure:
    """A figure whose ratio reads "times as good as the baseline" (target on that ratio)."""
    if ours is None or baseline is None or not ours or not baseline:
        return Figure(name, ours, baseline, unit, None, _target(target), "skipped")
    ratio = baseline / ours if lower_is_better else ours / baseline
    mark = "—" if target is None else ("pass" if ratio >= target else "SHORT")
    return Figure(name, ours, baseline, unit, ratio, _target(target), mark)


def limit(name: str, ours: float | None, bound: float, unit: str) -> Figure:
    """A figure held against an absolute bound (the bound is its baseline; ours / bound)."""
    if ours is None or math.isnan(ours):
        return Figure(name, ours, bound, unit, None, f"<= {bound:g} {unit}", "skipped")
    return Figure(name, ours, bound, unit, ours / bound, f"<= {bound:g} {unit}",
                  "pass" if ours <= bound else "SHORT")


def _target(target: float | None) -> str:
    return "—" if target is None else f">= {target:g}x"


def command_figures(best: dict[str, Result]) -> list[Figure]:
    up, raw = best.get("runlog up", {}), best.get("raw responder", {})
    pg, lite = best.get("ES+PostgreSQL", {}), best.get("ES+SQLite", {})
    return [
        figure("commands/s, runlog up vs raw responder", up.get("commands_per_s"),
               raw.get("commands_per_s"), "/s", target=0.8),
        figure("CPU µs/command, runlog up vs raw responder", up.get("cpu_us_per_command"),
               raw.get("cpu_us_per_command"), "µs", lower_is_better=True, target=0.8),
        figure("p50 latency, runlog up vs raw responder", up.get("p50_ms"), raw.get("p50_ms"), "ms",
               lower_is_better=True),
        figure("p99 latency, runlog up vs raw responder", up.get("p99_ms"), raw.get("p99_ms"), "ms",
               lower_is_better=True),
        figure("commands/s, runlog up vs ES+PostgreSQL", up.get("commands_per_s"),
               pg.get("commands_per_s"), "/s", target=5),
        figure("CPU µs/command, runlog up vs ES+PostgreSQL", up.get("cpu_us_per_command"),
               pg.get("cpu_us_per_command"), "µs", lower_is_better=True),
        figure("commands/s, runlog up vs ES+SQLite", up.get("commands_per_s"),
               lite.get("commands_per_s"), "/s"),
        figure("CPU µs/command, runlog up vs ES+SQLite", up.get("cpu_us_per_command"),
               lite.get("cpu_us_per_command"), "µs", lower_is_better=True),
    ]


def report(figures: list[Figure]) -> None:
    print(f"\n{'figure':<46} {'runlog':>10} {'baseline':>10} {'ratio':>7}  "
          f"{'target':<13} mark")
    for line in figures:
        ours = "—" if line.ours is None else f"{line.ours:,.1f}"
        base = "—" if line.baseline is None else f"{line.baseline:,.1f}"
        ratio = "—" if line.ratio is None else f"{line.ratio:.2f}x"
        print(f"{line.name:<46} {ours:>10} {base:>10} {ratio:>7}  {line.target:<13} "
              f"{line.mark}")
    print("ratio: how many times as good as the baseline (for CPU and latency: baseline / "
          "runlog); for a bound: runlog / bound")


def conditions() -> str:
    load1, load5, _ = os.getloadavg()
    return (f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cpus, "
            f"load average {load1:.1f} / {load5:.1f} (1 / 5 min), python "
            f"{sys.version.split()[0]}")


T = TypeVar("T", Result, dict[str, Result])


def attempt(section: str, measure: Callable[[], T]) -> T:
    """The section's result, or an empty one (its figures then read skipped) if it failed."""
    try:
        return measure()
    except (RuntimeError, subprocess.SubprocessError, OSError) as error:
        print(f"{section} failed, its figures are skipped: {error}", flush=True)
        return {}


def run(options: argparse.Namespace) -> dict[str, object]:
    sizes = QUICK if options.quick else Sizes()
    if options.rounds:
        sizes = Sizes(**asdict(sizes) | {"rounds": options.rounds})
    sections = set(options.only.split(",")) if options.only else set(SECTIONS)
    postgres = options.postgres != "off"
    why_not = postgres_available() if postgres and "commands" in sections else None
    if why_not:
        print(f"ES+PostgreSQL skipped: {why_not}")
        postgres = False
    print(f"bench_up: {conditions()}; sections {', '.join(s for s in SECTIONS if s in sections)}"
          f"{' (quick)' if options.quick else ''}", flush=True)
    figures: list[Figure] = []
    measured: dict[str, object] = {"conditions": conditions(), "sizes": asdict(sizes)}
    with tempfile.TemporaryDirectory(prefix="bench-up-") as tmp:
        folder = Path(tmp)
        if "commands" in sections:
            best = bench_commands(folder, sizes, postgres)
            measured["commands"] = best
            figures += command_figures(best)
        if "freshness" in sections:
            fresh = attempt("freshness", lambda: bench_freshness(folder, sizes))
            measured["freshness"] = fresh
            figures += freshness_figures(fresh, sizes.fresh_rate)
        if "replay" in sections:
            replay = attempt("replay", lambda: bench_replay(folder, sizes))
            measured["replay"] = replay
            figures.append(figure("replay events/s vs ordered consumer + json.loads",
                                  replay.get("runlog replay", {}).get("events_per_s"),
                                  replay.get("ordered consumer", {}).get("events_per_s"), "/s",
                                  target=0.8))
        if "memory" in sections:
            memory = attempt("memory", lambda: bench_memory(folder, sizes))
            measured["memory"] = memory
            figures.append(limit(f"peak RSS replaying {sizes.memory_events:,} events",
                                 memory.get("peak_rss_mb"), 500, "MB"))
        if options.profile:
            measured["profile"] = bench_profile(folder, sizes)
    report(figures)
    print(f"(best of {sizes.rounds} alternating rounds for commands, {sizes.replay_rounds} "
          f"for replay; {conditions()})")
    measured["figures"] = [asdict(line) for line in figures]
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--only", default="", help=f"comma-separated sections of {SECTIONS}")
    parser.add_argument("--rounds", type=int, default=0, help="rounds of the command section")
    parser.add_argument("--postgres", choices=("on", "off"), default="on",
                        help="compare with eventsourcing + the local PostgreSQL")
    parser.add_argument("--profile", action="store_true",
                        help="py-spy profile of one more runlog up round")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    options = parser.parse_args()
    measured = run(options)
    if options.json is not None:
        options.json.write_text(json.dumps(measured, indent=2, default=str))


if __name__ == "__main__":
    main()
