"""Aggregate snapshots in a JetStream KV bucket, each with the stream sequence it covers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client

from services.errors import StoreError, StoreUnavailable

__all__ = ["Snapshot", "SnapshotStore"]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """An aggregate's state as of stream sequence ``seq`` (its ``version``-th event)."""

    seq: int
    version: int
    state: dict[str, Any]


class SnapshotStore:
    """Saves and loads snapshots keyed ``<aggregate>.<id>``; the log stays the source of truth."""

    def __init__(self, nc: Client, bucket: str = "RUNLOG_SNAPSHOTS", replicas: int = 1) -> None:
        self._js = nc.jetstream()
        self._bucket_name = bucket
        self._replicas = replicas
        self._kv: Any = None

    async def _bucket(self) -> Any:
        if self._kv is None:
            try:
                self._kv = await self._js.key_value(self._bucket_name)
            except nats.js.errors.BucketNotFoundError:
                self._kv = await self._js.create_key_value(
                    bucket=self._bucket_name, history=1, replicas=self._replicas
                )
        return self._kv

    async def save(self, aggregate: str, aggregate_id: str, snapshot: Snapshot) -> None:
        """Stores the snapshot, replacing any older one."""
        body = {"seq": snapshot.seq, "version": snapshot.version, "state": snapshot.state}
        try:
            kv = await self._bucket()
            await kv.put(f"{aggregate}.{aggregate_id}", json.dumps(body).encode())
        except nats.errors.Error as error:
            raise _translate(error) from error

    async def load(self, aggregate: str, aggregate_id: str) -> Snapshot | None:
        """Returns the latest snapshot, or None."""
        try:
            kv = await self._bucket()
            entry = await kv.get(f"{aggregate}.{aggregate_id}")
        except nats.js.errors.KeyNotFoundError:
            return None
        except nats.errors.Error as error:
            raise _translate(error) from error
        body = json.loads(entry.value or b"{}")
        return Snapshot(int(body["seq"]), int(body["version"]), dict(body["state"]))


def _translate(error: BaseException) -> StoreError:
    if isinstance(error, (nats.errors.TimeoutError, nats.errors.NoRespondersError)):
        return StoreUnavailable(f"snapshot store did not answer ({type(error).__name__})")
    return StoreError(f"snapshot store: {error}")
