"""A transient failure of the log (a reconnect, a leader election: ``unavailable``) loses
no work: the log follower reads on, and every policy sends its command again at a later
round instead of dropping it. Each test fails exactly one append or subscribe."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from services.errors import StoreUnavailable
from services.settings import Settings
from services.store import InMemoryEventStore
from services.store.memory import MemoryFeed
from tests.support.nats_server import wait_until
from tests.support.service_client import InProcessClient, memory_service


class FailsOneAppend(InMemoryEventStore):
    """Fails the first append whose payload holds ``needle``, writing nothing."""

    def __init__(self, needle: bytes) -> None:
        super().__init__()
        self.needle = needle
        self.failed = 0

    async def append(self, messages: Any) -> Any:
        if not self.failed and any(self.needle in m.payload for m in messages):
            self.failed += 1
            raise StoreUnavailable("NATS did not answer (a leader election)")
        return await super().append(messages)


class _LosesOneEvent(MemoryFeed):
    """Never hands out the first event whose payload holds ``needle`` (a dropped message)."""

    def __init__(self, *args: Any, needle: bytes) -> None:
        super().__init__(*args)
        self._needle: bytes | None = needle

    def _take(self, max_size: int) -> list[Any]:
        batch = super()._take(max_size)
        kept = [e for e in batch if self._needle is None or self._needle not in e.payload]
        if len(kept) != len(batch):
            self._needle = None
        return kept


class FailsOneResubscribe(InMemoryEventStore):
    """Its first feed loses a ``TaskSubmitted`` (a gap), and the feed the follower then
    asks for fails once, as during a reconnect."""

    def __init__(self) -> None:
        super().__init__()
        self.subscribes = 0

    async def subscriptions(self) -> int:
        """How many feeds were asked for so far."""
        return self.subscribes

    async def subscribe(self, from_seq: int = 1, subjects: str | None = None,
                        max_pending: int = 200_000) -> Any:
        self.subscribes += 1
        if self.subscribes == 1:
            return _LosesOneEvent(self, max(from_seq, 1), subjects or f"{self.subject_prefix}.>",
                                  needle=b'"TaskSubmitted"')
        if self.subscribes == 2:
            raise StoreUnavailable("NATS did not answer (reconnecting)")
        return await super().subscribe(from_seq, subjects, max_pending)


async def _state(client: InProcessClient, aggregate: str, aggregate_id: str) -> str:
    return str((await client.state_of(aggregate, aggregate_id)).state)


async def _all_cancelled(client: InProcessClient, *task_ids: str) -> None:
    async def states() -> set[str]:
        return {await _state(client, "task", t) for t in task_ids}

    await wait_until(states, lambda found: found == {"cancelled"})


async def test_the_log_follower_reads_on_after_a_failed_resubscribe() -> None:
    store = FailsOneResubscribe()
    async with memory_service(store) as client:
        await client.running_run("r1")
        await client.submit("t1", run_id="r1")  # lost by the first feed: a gap
        await client.submit("t2", run_id="r1")  # past the gap: the follower reads again
        await wait_until(store.subscriptions, lambda n: n >= 3)  # the failed one, then anew
        await client.ok("run.cancel", {"run_id": "r1", "reason": "stop"})
        follower = client.service.follower
        await wait_until(store.last_seq, lambda head: follower.position == head)
        await _all_cancelled(client, "t1", "t2")  # the run-end policy saw the cancel


async def test_a_run_end_cancels_the_open_tasks_after_a_transient_failure() -> None:
    store = FailsOneAppend(b'"TaskCancelled"')
    async with memory_service(store) as client:
        await client.running_run("r1")
        await client.submit("t1", run_id="r1")
        await client.submit("t2", run_id="r1")
        await client.ok("run.cancel", {"run_id": "r1", "reason": "stop"})
        await _all_cancelled(client, "t1", "t2")
        assert store.failed == 1


async def test_an_auto_end_run_ends_after_a_transient_failure() -> None:
    store = FailsOneAppend(b'"RunSucceeded"')
    async with memory_service(store) as client:
        await client.running_run("r2", auto_end=True)
        await client.worker("w1", kinds=["llm"])
        await client.submit("t2", run_id="r2")
        task = await client.claim("w1")
        assert task is not None
        lease = {"task_id": "t2", "worker_id": "w1", "lease_epoch": task["lease_epoch"]}
        await client.ok("task.start", lease)
        await client.ok("task.succeed", {**lease, "result": {}})
        await wait_until(lambda: _state(client, "run", "r2"), lambda s: s == "succeeded")
        assert store.failed == 1


async def test_a_lapsed_lease_expires_after_a_transient_failure(tmp_path: Path) -> None:
    store = FailsOneAppend(b"lease_expired")
    settings = Settings(data_dir=tmp_path, lease_ttl_s=1.0)
    async with memory_service(store, settings=settings) as client:
        await client.running_run("r3")
        await client.worker("w1", kinds=["llm"])
        await client.submit("t3", run_id="r3")
        assert await client.claim("w1") is not None  # and the worker is never heard again
        await wait_until(lambda: _state(client, "task", "t3"), lambda s: s != "leased")
        assert store.failed == 1
        await client.caught_up()  # the board learns of the expiry from the log
        assert client.held_by("w1") == set()  # its slot is free again
