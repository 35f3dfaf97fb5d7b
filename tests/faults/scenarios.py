"""Fault scenarios under load, shared by the suite's short runs and ``tests/faults/run.py``.

Each one drives concurrent clients that resend a command with the same id until it is
answered (as the README tells clients to), injects a fault, waits for the service to
resume by itself, and then checks the log: every acknowledged command is there exactly
once, at the sequence its reply named, and no reply was ``internal``.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import nats
import nats.errors

from tests.e2e.cli import runlog_env, stop_up, wait_for_instance
from tests.support.load import LoadReport, drive_load, log_msg_ids
from tests.support.nats_process import NatsProcess, free_port, single_node_config, start_cluster

__all__ = ["FaultRun", "cluster_leader_loss", "kill_9_and_restart", "nats_restart"]

CLEAN_CODES = frozenset({"ok", "unavailable", "no_responders", "conflict"})
"""What a client may hear during a fault: success, or a transient refusal to retry."""
RESUME_TIMEOUT_S = 90.0


@dataclass
class FaultRun:
    """A scenario's outcome, checked and ready to print."""

    name: str
    report: LoadReport
    on_log: dict[str, list[int]]
    resumed_after_s: list[float]

    def check(self) -> None:
        """Nothing acknowledged lost or duplicated, and every reply a clean one."""
        assert set(self.report.codes) <= CLEAN_CODES, self.report.codes
        self.report.check_against_log(self.on_log)

    def summary(self) -> str:
        """One line of figures."""
        resumed = ", ".join(f"{s:.1f}" for s in self.resumed_after_s)
        lost = sum(cid not in self.on_log for cid in self.report.acknowledged)
        twice = sum(len(seqs) > 1 for seqs in self.on_log.values())
        return (f"{self.name}: {len(self.report.acknowledged)} acknowledged, {lost} lost, "
                f"{twice} duplicated; "
                f"replies {dict(self.report.codes)}; {self.report.retried} resent after no "
                f"reply; resumed after {resumed} s")


def start_up(data_dir: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """``runlog up`` with extra settings, its output kept in files (a long run fills pipes)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([sys.executable, "-m", "services.cli", "up", *args],
                            env=runlog_env(data_dir) | env,
                            stdout=(data_dir / "up.out").open("w"),
                            stderr=(data_dir / "up.err").open("w"), text=True)


class Flag:
    """Whether the load goes on."""

    def __init__(self) -> None:
        self.on = True

    def __call__(self) -> bool:
        return self.on


async def _resumed(report: LoadReport, more: int, timeout_s: float = RESUME_TIMEOUT_S
                   ) -> float:
    """Waits until ``more`` further commands are acknowledged; returns how long it took."""
    started, target = time.monotonic(), len(report.acknowledged) + more
    while len(report.acknowledged) < target:
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"no progress within {timeout_s}s: {report.codes}")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


@contextmanager
def _running_up(data_dir: Path, env: dict[str, str], *args: str) -> Iterator[
        subprocess.Popen[str]]:
    up = start_up(data_dir, env, *args)
    try:
        wait_for_instance(data_dir, up, timeout_s=120)
        yield up
    finally:
        if up.poll() is None:
            stop_up(up)


Faults = Callable[[LoadReport], Awaitable[list[float]]]
"""Injects the faults while the load runs; returns how long the service took to resume."""


async def _with_load(urls: list[str], clients: int, faults: Faults, steady_s: float = 0.0
                     ) -> tuple[LoadReport, list[float]]:
    """Runs the load around ``faults``: steady before, faults, steady again after."""
    report, flag = LoadReport(), Flag()
    load = asyncio.create_task(drive_load(urls, clients, flag, stop_when_refused=False,
                                          timeout_s=2.0, retry=True, report=report))
    try:
        await _resumed(report, clients * 5)
        await asyncio.sleep(steady_s)
        resumed = await faults(report)
        await _resumed(report, clients * 5)
        await asyncio.sleep(steady_s)
    finally:
        flag.on = False
        await load
    return report, resumed


async def _on_log(urls: list[str]) -> dict[str, list[int]]:
    nc = await nats.connect(urls)
    try:
        return await log_msg_ids(nc, "RUNLOG", timeout_s=120)
    finally:
        await nc.close()


async def kill_9_and_restart(work: Path, clients: int = 32, kills: int = 1,
                             steady_s: float = 0.0) -> FaultRun:
    """``runlog up`` killed with SIGKILL under load, then started again, ``kills`` times."""
    port = free_port()
    with NatsProcess(single_node_config(work / "nats", port), port) as server:
        env = {"RUNLOG_NATS_URL": server.url}
        up = start_up(work / "runlog", env, "--no-projectors")
        wait_for_instance(work / "runlog", up, timeout_s=120)

        async def faults(report: LoadReport) -> list[float]:
            nonlocal up
            resumed = []
            for _ in range(kills):
                up.send_signal(signal.SIGKILL)
                await asyncio.to_thread(up.wait)
                started = time.monotonic()
                up = start_up(work / "runlog", env, "--no-projectors")
                await _resumed(report, clients)
                resumed.append(time.monotonic() - started)
                await asyncio.sleep(steady_s)
            return resumed

        try:
            report, resumed = await _with_load([server.url], clients, faults, steady_s)
        finally:
            stop_up(up)
        return FaultRun("kill -9 of runlog up", report, await _on_log([server.url]), resumed)


async def nats_restart(work: Path, clients: int = 32,
                       signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGKILL),
                       steady_s: float = 0.0) -> FaultRun:
    """The NATS server stopped (each of ``signals``) under load and started again."""
    port = free_port()
    server = NatsProcess(single_node_config(work / "nats", port), port).start()
    try:
        with _running_up(work / "runlog", {"RUNLOG_NATS_URL": server.url}) as up:
            async def faults(report: LoadReport) -> list[float]:
                resumed = []
                for signum in signals:
                    await asyncio.to_thread(server.stop, signum)
                    started = time.monotonic()
                    await asyncio.to_thread(server.start)
                    await _resumed(report, clients)
                    resumed.append(time.monotonic() - started)
                    await asyncio.sleep(steady_s)
                return resumed

            report, resumed = await _with_load([server.url], clients, faults, steady_s)
            assert up.poll() is None, "runlog up died with its NATS"
            await _read_side_caught_up(server.url, max(report.acknowledged.values()))
        return FaultRun("NATS restart", report, await _on_log([server.url]), resumed)
    finally:
        server.stop(signal.SIGKILL)


async def _read_side_caught_up(url: str, seq: int) -> None:
    """The projector resumed too: a query waiting for ``seq`` is answered."""
    nc = await nats.connect(url)
    try:
        body = {"sql": "SELECT count(*) AS n FROM runs", "wait_seq": seq, "wait_timeout_s": 60}
        msg = await nc.request("runlog.sql.query", json.dumps(body).encode(), timeout=90)
        reply = json.loads(msg.data)
        assert reply["ok"] is True, reply
    finally:
        await nc.close()


async def _jetstream_ready(urls: list[str], timeout_s: float = 60.0) -> None:
    """Waits until the cluster has elected its JetStream meta leader."""
    nc = await nats.connect(urls)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                await nc.jetstream().account_info()
                return
            except nats.errors.Error:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
    finally:
        await nc.close()


async def _stream_leader(urls: list[str]) -> str:
    nc = await nats.connect(urls)
    try:
        info = await nc.jetstream().stream_info("RUNLOG")
        assert info.cluster is not None
        assert info.cluster.leader, info.cluster
        return str(info.cluster.leader)
    finally:
        await nc.close()


async def cluster_leader_loss(work: Path, clients: int = 32, losses: int = 1,
                              steady_s: float = 0.0) -> FaultRun:
    """A 3-node cluster, ``RUNLOG_REPLICAS=3``: the stream leader is killed under load."""
    nodes = start_cluster(work / "cluster")
    urls = [node.url for node in nodes]
    try:
        await _jetstream_ready(urls)
        env = {"RUNLOG_NATS_URL": ",".join(urls), "RUNLOG_REPLICAS": "3"}
        with _running_up(work / "runlog", env, "--no-projectors"):
            async def faults(report: LoadReport) -> list[float]:
                resumed = []
                for _ in range(losses):
                    leader = await _stream_leader(urls)
                    node = nodes[int(leader.removeprefix("n")) - 1]
                    node.stop(signal.SIGKILL)
                    started = time.monotonic()
                    await _resumed(report, clients)
                    resumed.append(time.monotonic() - started)
                    await asyncio.to_thread(node.start)
                    await asyncio.sleep(steady_s)
                return resumed

            report, resumed = await _with_load(urls, clients, faults, steady_s)
        return FaultRun("R3 stream leader killed", report, await _on_log(urls), resumed)
    finally:
        for node in nodes:
            node.stop(signal.SIGKILL)
