"""The long fault runs, by hand: ``python -m tests.faults.run SCENARIO [options]``.

Scenarios: ``kill9``, ``nats-restart``, ``cluster`` (the suite's short runs, with more
clients and more faults), ``hostile`` (10,000 generated requests) and ``soak``
(RSS of ``runlog up`` under steady load, sampled until the end). Each prints its
figures; the README keeps the last ones measured.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from tests.e2e.cli import wait_for_instance
from tests.support.load import LoadReport, drive_load, log_msg_ids
from tests.support.nats_process import NatsProcess, free_port, single_node_config

from .scenarios import Flag, cluster_leader_loss, kill_9_and_restart, nats_restart, start_up


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tests.faults.run", description=__doc__)
    parser.add_argument("scenario", choices=("kill9", "nats-restart", "cluster", "hostile",
                                             "soak"))
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--times", type=int, default=3, help="faults injected (kill9, cluster)")
    parser.add_argument("--steady-s", type=float, default=20.0,
                        help="steady load before, between and after the faults")
    parser.add_argument("--examples", type=int, default=10_000, help="hostile requests")
    parser.add_argument("--minutes", type=float, default=30.0, help="soak length")
    parser.add_argument("--sample-s", type=float, default=30.0, help="soak RSS sampling period")
    return parser


def _rss_mb(pid: int) -> tuple[float, float]:
    """RSS of ``runlog up`` and of its nats-server child, in MB."""
    process = psutil.Process(pid)
    children = sum(child.memory_info().rss for child in process.children(recursive=True))
    return process.memory_info().rss / 2**20, children / 2**20


async def soak(work: Path, clients: int, minutes: float, sample_s: float) -> None:
    """Steady load on ``runlog up`` (projectors on) against its own NATS; RSS sampled."""
    port = free_port()
    with NatsProcess(single_node_config(work / "nats", port), port) as server:
        up = start_up(work / "runlog", {"RUNLOG_NATS_URL": server.url})
        wait_for_instance(work / "runlog", up, timeout_s=120)
        report, flag = LoadReport(), Flag()
        load = asyncio.create_task(drive_load([server.url], clients, flag,
                                              stop_when_refused=False, timeout_s=5.0,
                                              retry=True, report=report))
        started, samples = time.monotonic(), []
        print("minute  acknowledged  runlog_rss_mb")
        while time.monotonic() - started < minutes * 60:
            await asyncio.sleep(sample_s)
            rss, _ = _rss_mb(up.pid)
            samples.append((time.monotonic() - started, rss))
            print(f"{samples[-1][0] / 60:6.1f}  {len(report.acknowledged):12d}  {rss:13.1f}",
                  flush=True)
        flag.on = False
        await load
        up.send_signal(signal.SIGINT)
        up.wait(30)
        _print_plateau(samples)
        _check(report, await _on_log(server.url))


def _print_plateau(samples: list[tuple[float, float]]) -> None:
    third = max(1, len(samples) // 3)
    (t0, r0), (t1, r1) = samples[-third - 1] if len(samples) > third else samples[0], samples[-1]
    rate = (r1 - r0) / max((t1 - t0) / 60, 1e-9)
    print(f"RSS: peak {max(r for _, r in samples):.1f} MB; over the last third "
          f"{r0:.1f} -> {r1:.1f} MB ({rate:+.2f} MB/min)")


async def _on_log(url: str) -> dict[str, list[int]]:
    import nats

    nc = await nats.connect(url)
    try:
        return await log_msg_ids(nc, "RUNLOG", timeout_s=600)
    finally:
        await nc.close()


def _check(report: LoadReport, on_log: dict[str, list[int]]) -> None:
    lost = sum(cid not in on_log for cid in report.acknowledged)
    twice = sum(len(seqs) > 1 for seqs in on_log.values())
    print(f"{len(report.acknowledged)} acknowledged, {lost} lost, {twice} duplicated; "
          f"replies {dict(report.codes)}")


def hostile(examples: int) -> int:
    """The suite's generated-request test with ``examples`` requests."""
    env = os.environ | {"FAULTS_HOSTILE_EXAMPLES": str(examples)}
    return subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            "tests/e2e/test_hostile_requests.py"], env=env)


def main() -> int:
    """Runs one scenario in a fresh temporary directory."""
    args = _parser().parse_args()
    if args.scenario == "hostile":
        return hostile(args.examples)
    with tempfile.TemporaryDirectory(prefix="runlog-faults-") as scratch:
        work = Path(scratch)
        started = time.monotonic()
        if args.scenario == "soak":
            asyncio.run(soak(work, args.clients, args.minutes, args.sample_s))
        else:
            steady = args.steady_s
            runs = {"kill9": lambda: kill_9_and_restart(work, args.clients, args.times, steady),
                    "nats-restart": lambda: nats_restart(work, args.clients, steady_s=steady),
                    "cluster": lambda: cluster_leader_loss(work, args.clients, args.times,
                                                           steady)}
            run = asyncio.run(runs[args.scenario]())
            print(run.summary())
            run.check()
        print(f"done in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
