"""Aggregate snapshots in a JetStream KV bucket, each with the stream sequence it covers."""

from __future__ import annotations

import uuid

import pytest
from nats.aio.client import Client

from services.store import Snapshot, SnapshotStore

pytestmark = pytest.mark.nats


@pytest.fixture
async def snapshots(nc: Client) -> SnapshotStore:
    return SnapshotStore(nc, bucket=f"SNAP_{uuid.uuid4().hex[:10]}")


async def test_a_saved_snapshot_loads_with_its_position(snapshots: SnapshotStore) -> None:
    await snapshots.save("run", "r1", Snapshot(seq=42, version=7, state={"state": "running"}))
    assert await snapshots.load("run", "r1") == Snapshot(42, 7, {"state": "running"})


async def test_a_newer_snapshot_replaces_the_older(snapshots: SnapshotStore) -> None:
    await snapshots.save("run", "r1", Snapshot(seq=10, version=2, state={"n": 1}))
    await snapshots.save("run", "r1", Snapshot(seq=20, version=4, state={"n": 2}))
    assert await snapshots.load("run", "r1") == Snapshot(20, 4, {"n": 2})


async def test_an_aggregate_without_a_snapshot_loads_none(snapshots: SnapshotStore) -> None:
    await snapshots.save("run", "r1", Snapshot(seq=1, version=1, state={}))
    assert await snapshots.load("run", "r2") is None
    assert await snapshots.load("task", "r1") is None
