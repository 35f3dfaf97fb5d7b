"""``runlog up`` as a user runs it, as a black box: a subprocess with its own data directory.

The embedded ``nats-server`` it starts is its child; so will be any process it
starts for its read side. CPU is read from ``/proc`` for the whole tree, with the
``nats-server`` counted apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import IO

import nats
from prometheus_client.parser import text_string_to_metric_families

from projections.freshness import FRESHNESS_BOUNDS_S, FreshnessHistogram
from services.read_side import STATUS_INTERVAL_S
from tests.bench.common import split_tree_cpu_s, thread_cpu_s

__all__ = ["RunlogUp", "freshness_from_metrics", "runlog_env", "sql_query"]

ROOT = Path(__file__).resolve().parents[2]


def runlog_env(data_dir: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a ``runlog`` verb: its own data dir, no system NATS, no fixed port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNLOG_", "OTEL_"))}
    return env | {"RUNLOG_DATA_DIR": str(data_dir), "RUNLOG_HTTP_ADDR": "127.0.0.1:0",
                  "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)} | (extra or {})


async def sql_query(url: str, sql: str, wait_seq: int = 0, timeout_s: float = 60
                    ) -> dict[str, object]:
    """One ``runlog.sql.query`` request; the decoded reply."""
    nc = await nats.connect(url)
    try:
        body = {"sql": sql, "wait_seq": wait_seq, "wait_timeout_s": timeout_s}
        msg = await nc.request("runlog.sql.query", json.dumps(body).encode(),
                               timeout=timeout_s + 10)
    finally:
        await nc.close()
    reply: dict[str, object] = json.loads(msg.data)
    return reply


async def _answers(url: str) -> bool:
    """Whether both the command intake and the read side answer."""
    try:
        nc = await nats.connect(url, connect_timeout=1, max_reconnect_attempts=0)
    except Exception:  # not listening yet
        return False
    try:
        await nc.request("runlog.cmd.run.start", b'{"run_id": "bench-probe"}', timeout=1)
        reply = json.loads((await nc.request("runlog.sql.query", b'{"sql": "SELECT 1"}',
                                             timeout=1)).data)
        return bool(reply.get("ok"))
    except Exception:  # a timeout or no responders: not serving yet
        return False
    finally:
        await nc.close()


def freshness_from_metrics(text: str, projector: str = "read_models") -> FreshnessHistogram:
    """The projector's ``runlog_projector_freshness_seconds`` histogram out of ``/metrics``."""
    cumulative: dict[float, float] = {}
    total = 0.0
    for family in text_string_to_metric_families(text):
        if family.name != "runlog_projector_freshness_seconds":
            continue
        for sample in family.samples:
            if sample.labels.get("projector") != projector:
                continue
            if sample.name.endswith("_bucket"):
                cumulative[float(sample.labels["le"])] = sample.value
            elif sample.name.endswith("_sum"):
                total = sample.value
    bounds = (*FRESHNESS_BOUNDS_S, float("inf"))
    if set(cumulative) != set(bounds):
        return FreshnessHistogram()
    running = [int(cumulative[bound]) for bound in bounds]
    return FreshnessHistogram([n - prev for n, prev in zip(running, [0, *running], strict=False)],
                              total)


def _read_freshness(url: str) -> FreshnessHistogram:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return freshness_from_metrics(answer.read().decode())


class RunlogUp:
    """One ``runlog up`` (everything on) on a fresh data directory, until ``stop``."""

    def __init__(self, data_dir: Path, extra_env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self._log: IO[str] = (data_dir.parent / f"{data_dir.name}-up.log").open("w")
        self.process = subprocess.Popen([sys.executable, "-m", "services.cli", "up"],
                                        env=runlog_env(data_dir, extra_env), cwd=ROOT,
                                        stdout=self._log, stderr=subprocess.STDOUT, text=True)
        self.url = ""

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, timeout_s: float = 90) -> str:
        """Waits until commands and SQL are answered; returns the NATS URL."""
        deadline = time.monotonic() + timeout_s
        instance = self.data_dir / "instance.json"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"runlog up exited early; see {self._log.name}")
            if not self.url and instance.exists():
                with contextlib.suppress(ValueError, KeyError):
                    self.url = str(json.loads(instance.read_text())["nats_url"])
            if self.url and asyncio.run(_answers(self.url)):
                return self.url
            time.sleep(0.1)
        raise RuntimeError(f"runlog up not ready within {timeout_s}s; see {self._log.name}")

    def cpu_s(self) -> tuple[float, float]:
        """CPU seconds so far: (runlog's processes, its embedded nats-server)."""
        return split_tree_cpu_s(self.pid)

    def threads_cpu_s(self) -> dict[str, float]:
        """CPU seconds so far by process and thread (main / others)."""
        return thread_cpu_s(self.pid)

    def freshness(self, settle_s: float = 5.0) -> FreshnessHistogram:
        """The read side's freshness histogram so far, as its ``/metrics`` serves it, once
        two reads a status interval apart agree (the child reports every half second)."""
        fields = json.loads((self.data_dir / "instance.json").read_text())
        url = f"{fields['http_url']}/metrics"
        deadline = time.monotonic() + settle_s
        last = _read_freshness(url)
        while time.monotonic() < deadline:
            time.sleep(STATUS_INTERVAL_S + 0.1)
            now = _read_freshness(url)
            if now == last:
                break
            last = now
        return last

    def wait_quiet(self, timeout_s: float = 5.0, idle_share: float = 0.05) -> None:
        """Waits until the service burns under ``idle_share`` of a core (its work is done)."""
        deadline = time.monotonic() + timeout_s
        last = self.cpu_s()[0]
        while time.monotonic() < deadline:
            time.sleep(0.25)
            now = self.cpu_s()[0]
            if now - last < 0.25 * idle_share:
                return
            last = now

    def stop(self, timeout_s: float = 30) -> None:
        """Stops it as Ctrl-C does (killing it past the timeout), and frees its data."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        shutil.rmtree(self.data_dir, ignore_errors=True)
