"""A worker process receiving SIGTERM finishes its task, claims no more, and deregisters."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from services.sdk import Client
from tests.integration.sdk import sigterm_worker
from tests.integration.sdk.conftest import REPO, eventually, exited, rows, spawn

pytestmark = pytest.mark.nats

async def test_one_sigterm_drains_the_workers_of_a_process(client: Client, nats_url: str,
                                                           tmp_path: Path) -> None:
    run = await client.create_run(name="sdk-sigterm")
    await client.start_run(run_id=run.id)
    for n, priority in ((1, 5), (2, 5), (3, 0)):
        await client.submit_task(run_id=run.id, kind=sigterm_worker.KIND, task_id=f"held-{n}",
                                 priority=priority)
    workers = "SELECT state FROM workers WHERE worker_id LIKE 'sdk-sigterm-%'"
    tasks = "SELECT task_id, state FROM tasks WHERE task_id LIKE 'held-%' ORDER BY task_id"
    release = tmp_path / "release"
    process = spawn(["-m", sigterm_worker.__name__, str(release)], nats_url, REPO)
    try:
        await eventually(client, tasks, lambda r: rows(r) == [
            ("held-1", "running"), ("held-2", "running"), ("held-3", "queued")])
        process.send_signal(signal.SIGTERM)
        await eventually(client, workers, lambda r: rows(r) == [("draining",)] * 2)
        release.touch()
    finally:
        stderr = await exited(process)
    assert process.returncode == 0, stderr
    # The process's writes were acknowledged before it exited; the read models follow.
    ended = await eventually(client, tasks, lambda r: ("running",) not in [x[1:] for x in rows(r)])
    assert rows(ended) == [("held-1", "succeeded"), ("held-2", "succeeded"), ("held-3", "queued")]
    offline = await eventually(client, workers, lambda r: ("draining",) not in rows(r))
    assert rows(offline) == [("offline",)] * 2
