"""Short runs of the fault scenarios: nothing acknowledged is lost or duplicated.

``tests/faults/run.py`` runs the long versions (more clients, more faults, the soak).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.faults.scenarios import cluster_leader_loss, kill_9_and_restart, nats_restart

pytestmark = [pytest.mark.nats, pytest.mark.slow]

CLIENTS = 16


def test_kill_9_of_runlog_up_under_load_then_restart(tmp_path: Path) -> None:
    asyncio.run(kill_9_and_restart(tmp_path, CLIENTS)).check()


def test_nats_stopped_and_killed_under_load_the_service_resumes_by_itself(
        tmp_path: Path) -> None:
    asyncio.run(nats_restart(tmp_path, CLIENTS)).check()


def test_a_three_node_cluster_loses_its_stream_leader_under_load(tmp_path: Path) -> None:
    asyncio.run(cluster_leader_loss(tmp_path, CLIENTS)).check()
