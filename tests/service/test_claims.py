"""Claims: order, who may claim what, capacity, and failed attempts coming back (or not)."""

from __future__ import annotations

import pytest

from events import utc_now
from tests.support.nats_server import wait_until
from tests.support.service_client import (
    ServiceClient,
    task_id_with_backoff,
    wait_past,
)


async def test_highest_priority_first_then_submission_order(client: ServiceClient) -> None:
    """9 before 7 before 5 ...; equal priorities in the order they were submitted."""
    await client.running_run("r1")
    await client.worker("w1", capacity=10)
    for task_id, priority in [("a", 3), ("b", 7), ("c", 5), ("d", 7), ("e", 0), ("f", 9),
                              ("g", 5)]:
        await client.submit(task_id, priority=priority)
    claimed = []
    for _ in range(7):
        task = await client.claim("w1")
        assert task is not None
        claimed.append(task["task_id"])
    assert claimed == ["f", "b", "d", "c", "g", "a", "e"]
    assert await client.claim("w1") is None


async def test_an_empty_queue_answers_task_null_and_writes_nothing(client: ServiceClient
                                                                   ) -> None:
    """No claimable task: ok, ``task: null``, the worker's id and position."""
    await client.worker("w1")
    before = await client.last_seq()
    reply = await client.ok("task.claim", {"worker_id": "w1"}, "task")
    assert reply == {"ok": True, "id": "w1", "version": 1, "seq": before, "events": [],
                     "task": None}
    assert await client.last_seq() == before


async def test_only_a_live_registered_worker_may_claim(client: ServiceClient) -> None:
    """Unknown: not_found; deregistered (offline): invalid_transition."""
    await client.running_run("r1")
    await client.submit("t1")
    await client.refused("task.claim", {"worker_id": "w1"}, "not_found")
    await client.worker("w1")
    await client.ok("worker.deregister", {"worker_id": "w1"})
    error = await client.refused("task.claim", {"worker_id": "w1"}, "invalid_transition")
    assert error["message"] == "worker w1 is offline; assign needs idle/busy"
    assert await client.types_of("task", "t1") == ["TaskSubmitted"]


async def test_a_worker_gets_only_kinds_it_serves(client: ServiceClient) -> None:
    """A better task of another kind is left for workers serving it."""
    await client.running_run("r1")
    await client.worker("w1", kinds=["llm"], capacity=5)
    await client.submit("tool-task", kind="tool", priority=9)
    await client.submit("llm-task", kind="llm", priority=1)
    task = await client.claim("w1")
    assert task is not None
    assert task["task_id"] == "llm-task"
    assert await client.claim("w1") is None
    error = await client.refused("task.claim", {"worker_id": "w1", "kinds": ["tool"]},
                                 "validation_failed")
    assert error["details"] == {"registered": ["llm"]}
    await client.worker("w2", kinds=["llm", "tool"])
    narrowed = await client.claim("w2", kinds=["tool"])
    assert narrowed is not None
    assert narrowed["task_id"] == "tool-task"


async def test_a_worker_registered_without_kinds_serves_every_kind(client: ServiceClient
                                                                   ) -> None:
    """Registering no kinds means serving every kind (``WorkerState.serves``)."""
    # The claim plan passes the worker's empty kind list to the claim index, whose
    # candidates() looks only at the kinds listed: nothing is ever found.
    await client.running_run("r1")
    await client.ok("worker.register", {"worker_id": "w1"})
    await client.submit("t1", kind="llm")
    task = await client.claim("w1")
    assert task is not None, (
        "a worker registered without kinds never gets a task: task_queue.candidates([]) "
        "yields nothing")
    assert task["task_id"] == "t1"


async def test_a_full_worker_is_refused_until_a_slot_frees(client: ServiceClient) -> None:
    """Capacity 2: two leases, then invalid_transition (nothing written); a release reopens."""
    await client.running_run("r1")
    await client.worker("w1", capacity=2)
    for task_id in ("t1", "t2", "t3"):
        await client.submit(task_id)
    first, second = await client.claim("w1"), await client.claim("w1")
    assert first is not None
    assert second is not None
    error = await client.refused("task.claim", {"worker_id": "w1"}, "invalid_transition")
    assert error["message"] == "worker w1 is at capacity (2 of 2)"
    assert error["details"] == {"capacity": 2, "held": 2}
    assert await client.types_of("task", "t3") == ["TaskSubmitted"]
    await client.ok("task.succeed", {"task_id": first["task_id"], "worker_id": "w1",
                                     "lease_epoch": 1})
    third = await client.claim("w1")
    assert third is not None
    assert third["task_id"] == "t3"


@pytest.mark.slow
async def test_a_retryable_failure_is_claimable_again_after_its_backoff(
        client: ServiceClient) -> None:
    """retry_wait hides the task until retry_at; then it is leased with the next epoch."""
    task_id = task_id_with_backoff(0.4, 0.8)
    await client.running_run("r1")
    await client.worker("w1")
    await client.submit(task_id)
    await client.claim("w1")
    await client.ok("task.fail", {"task_id": task_id, "worker_id": "w1", "lease_epoch": 1,
                                  "error_class": "server_error"})
    retry_at = (await client.state_of("task", task_id)).retry_at
    assert await client.claim("w1") is None
    assert utc_now() < retry_at, "the early claim came too late to prove anything"

    async def claim() -> dict[str, object] | None:
        return await client.send("task.claim", {"worker_id": "w1"})

    reply = await wait_until(claim, lambda r: r is not None and r.get("task") is not None)
    assert utc_now() >= retry_at
    assert reply is not None
    assert reply["events"] == ["TaskLeased"]
    assert (reply["task"]["lease_epoch"], reply["task"]["attempt"]) == (2, 2)  # type: ignore[index]


async def test_a_non_retryable_failure_fails_the_task_at_once(client: ServiceClient) -> None:
    """No retry: the task is failed and nobody can claim it."""
    await client.running_run("r1")
    await client.worker("w1")
    await client.submit("t1")
    await client.claim("w1")
    reply = await client.ok("task.fail", {"task_id": "t1", "worker_id": "w1", "lease_epoch": 1,
                                          "error_class": "invalid_request", "message": "bad"})
    assert reply["events"][0] == "TaskFailed"
    assert (await client.state_of("task", "t1")).state == "failed"
    assert await client.claim("w1") is None


@pytest.mark.slow
async def test_exhausted_attempts_fail_the_task(client: ServiceClient) -> None:
    """With max_attempts 2, the second retryable failure is final."""
    task_id = task_id_with_backoff(0.0, 0.15)
    await client.running_run("r1")
    await client.worker("w1")
    await client.submit(task_id, max_attempts=2)
    await client.claim("w1")
    holder = {"task_id": task_id, "worker_id": "w1", "error_class": "timeout"}
    first = await client.ok("task.fail", holder | {"lease_epoch": 1})
    assert first["events"][0] == "TaskRetryScheduled"
    await wait_past((await client.state_of("task", task_id)).retry_at)
    again = await client.claim("w1")
    assert again is not None
    assert (again["attempt"], again["lease_epoch"]) == (2, 2)
    last = await client.ok("task.fail", holder | {"lease_epoch": 2})
    assert last["events"] == ["TaskFailed"]
    failed = (await client.events_of("task", task_id))[-1]
    assert (failed["attempt"], failed["error_class"], failed["to_state"]) == (
        2, "timeout", "failed")
    assert await client.claim("w1") is None


async def test_cancelling_a_leased_task_frees_the_worker_and_voids_the_lease(
        client: ServiceClient) -> None:
    """task.cancel ends the lease in the same append as the worker's release."""
    await client.running_run("r1")
    await client.worker("w1")
    await client.submit("t1")
    await client.claim("w1")
    reply = await client.ok("task.cancel", {"task_id": "t1", "reason": "obsolete"})
    assert reply["events"] == ["TaskCancelled"]
    await client.refused("task.succeed", {"task_id": "t1", "worker_id": "w1", "lease_epoch": 1},
                         "invalid_transition")


async def test_a_due_retry_waits_behind_a_higher_priority_task_and_leads_its_own(
        client: ServiceClient) -> None:
    await client.running_run("r1")
    await client.worker("w1")
    await client.submit("low", priority=0)
    first = await client.claim("w1")
    assert first is not None
    # context_overflow retries at once (truncate): the retry is due as it fails
    await client.ok("task.fail", {"task_id": "low", "worker_id": "w1",
                                  "lease_epoch": first["lease_epoch"],
                                  "error_class": "context_overflow"})
    await client.submit("high", priority=9)
    await client.submit("later-low", priority=0)
    order = []
    for _ in range(3):
        claimed = await client.claim("w1")
        assert claimed is not None
        order.append(claimed["task_id"])
        await client.ok("task.cancel", {"task_id": claimed["task_id"], "reason": "seen"})
    assert order == ["high", "low", "later-low"]
