"""Stopping `runlog up` under load: every request answered or cleanly refused, nothing lost.

The signal goes to the whole process group, as a terminal's Ctrl-C does: the embedded
nats-server must not receive it, and runlog must stop it only after draining.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import nats
import pytest

from services.embedded_nats import EmbeddedNats
from tests.e2e.cli import nats_children, runlog_env, wait_for_instance
from tests.support.load import LoadReport, drive_load, log_msg_ids

pytestmark = [pytest.mark.nats, pytest.mark.slow]

CLIENTS = 64
_EXIT_DEADLINE_S = 10.0


def start_up_in_own_group(data_dir: Path) -> subprocess.Popen[str]:
    """``runlog up`` as a terminal runs it: the leader of its own process group."""
    return subprocess.Popen([sys.executable, "-m", "services.cli", "up"],
                            env=runlog_env(data_dir), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stop_under_load_answers_every_request_and_loses_nothing(
        tmp_path: Path, signum: int) -> None:
    up = start_up_in_own_group(tmp_path)
    try:
        url = wait_for_instance(tmp_path, up)
        report = asyncio.run(_load_and_stop(url, up, signum))
        _, stderr = up.communicate(timeout=5)
    finally:
        up.kill()
        up.wait()
    assert up.returncode == 0, stderr
    assert "Traceback" not in stderr, stderr
    assert "failed" not in stderr, stderr
    assert nats_children(tmp_path) == [], "the embedded nats-server outlived runlog"
    assert report.lost == [], f"{len(report.lost)} requests got no reply"
    assert report.codes["ok"] > CLIENTS, report.codes
    assert set(report.codes) <= {"ok", "unavailable", "no_responders"}, report.codes
    with EmbeddedNats(tmp_path) as server:
        report.check_against_log(asyncio.run(_log(server.url)))


async def _load_and_stop(url: str, up: subprocess.Popen[str], signum: int) -> LoadReport:
    load = asyncio.create_task(drive_load([url], CLIENTS, lambda: True))
    await asyncio.sleep(1.0)  # replies flowing at full pace
    assert not load.done(), "the load ended before the signal"
    os.killpg(up.pid, signum)
    report = await load
    await asyncio.to_thread(up.wait, _EXIT_DEADLINE_S)
    return report


async def _log(url: str) -> dict[str, list[int]]:
    nc = await nats.connect(url)
    try:
        return await log_msg_ids(nc, "RUNLOG")
    finally:
        await nc.close()
