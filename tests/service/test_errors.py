"""Every error code reachable from outside: exact reply, nothing written, service still serving."""

from __future__ import annotations

from pathlib import Path

from events import EventEnvelope, event_subject, utc_now
from services.settings import Settings
from services.store import Expectation, OutgoingMessage
from tests.support.service_client import ServiceClient, memory_service


async def test_not_found(client: ServiceClient) -> None:
    """Commands on aggregates that do not exist name what is missing."""
    cases = [
        ("run.start", {"run_id": "ghost"}, "run ghost does not exist"),
        ("worker.heartbeat", {"worker_id": "ghost"}, "worker ghost does not exist"),
        ("task.start", {"task_id": "ghost", "worker_id": "w1", "lease_epoch": 1},
         "task ghost does not exist"),
        ("task.submit", {"task_id": "t1", "run_id": "ghost", "kind": "llm"},
         "run ghost does not exist"),
        ("task.claim", {"worker_id": "ghost"},
         "worker ghost is not registered; worker.register first"),
    ]
    for subject, body, message in cases:
        error = await client.refused(subject, body, "not_found")
        assert error["message"] == message


async def test_already_exists(client: ServiceClient) -> None:
    """A create naming a taken id is refused, whoever sends it."""
    await client.running_run("r1")
    await client.ok("worker.register", {"worker_id": "w1"})
    await client.submit("t1")
    await client.ok("budget.create", {"budget_id": "b1", "name": "b"})
    for subject, body, message in [
        ("run.create", {"run_id": "r1", "name": "again"}, "run r1 already exists"),
        ("worker.register", {"worker_id": "w1"}, "worker w1 already exists and is idle"),
        ("task.submit", {"task_id": "t1", "run_id": "r1", "kind": "llm"},
         "task t1 already exists"),
        ("budget.create", {"budget_id": "b1", "name": "b"}, "budget b1 already exists"),
    ]:
        error = await client.refused(subject, body, "already_exists")
        assert error["message"] == message


async def test_invalid_transition_names_the_state_and_the_needed_state(
        client: ServiceClient) -> None:
    """The message says what the aggregate is and what the command needs."""
    await client.ok("run.create", {"run_id": "r1", "name": "n"})
    error = await client.refused("run.succeed", {"run_id": "r1"}, "invalid_transition")
    assert error["message"] == "run r1 is pending; succeed needs running"
    assert error["details"] == {"state": "pending", "allowed_from": ["running"]}
    error = await client.refused("task.submit", {"run_id": "r1", "kind": "llm"},
                                 "invalid_transition")
    assert error["message"] == "run r1 is pending; task.submit needs running"
    await client.ok("run.start", {"run_id": "r1"})
    await client.ok("run.succeed", {"run_id": "r1"})
    for subject, message in [
        ("run.start", "run r1 is succeeded; start needs pending"),
        ("run.fail", "run r1 is succeeded; fail needs running"),
        ("run.cancel", "run r1 is succeeded; cancel needs pending/running"),
    ]:
        error = await client.refused(subject, {"run_id": "r1"}, "invalid_transition")
        assert error["message"] == message
        assert error["details"]["state"] == "succeeded"


async def test_an_ended_task_refuses_its_holder(client: ServiceClient) -> None:
    """After succeed, the same holder's start is an invalid transition, not a second outcome."""
    await client.running_run("r1")
    await client.ok("worker.register", {"worker_id": "w1", "kinds": ["llm"]})
    await client.submit("t1")
    await client.claim("w1")
    holder = {"task_id": "t1", "worker_id": "w1", "lease_epoch": 1}
    await client.ok("task.succeed", holder)
    error = await client.refused("task.start", holder, "invalid_transition")
    assert error["message"] == "task t1 is succeeded; start needs leased"
    await client.refused("task.fail", holder | {"error_class": "timeout"}, "invalid_transition")


async def test_lease_mismatch_for_a_wrong_epoch_or_a_wrong_worker(client: ServiceClient) -> None:
    """Only the current holder at the current epoch may act on a leased task."""
    await client.running_run("r1")
    for worker_id in ("w1", "w2"):
        await client.ok("worker.register", {"worker_id": worker_id, "kinds": ["llm"]})
    await client.submit("t1")
    await client.claim("w1")
    wrong_epoch = await client.refused(
        "task.start", {"task_id": "t1", "worker_id": "w1", "lease_epoch": 2}, "lease_mismatch")
    assert wrong_epoch["message"] == "task t1 is not leased to worker w1 at epoch 2"
    assert wrong_epoch["details"] == {"worker_id": "w1", "lease_epoch": 1}
    for subject, extra in [("task.succeed", {}), ("task.heartbeat", {}),
                           ("task.fail", {"error_class": "timeout"})]:
        wrong_worker = await client.refused(
            subject, {"task_id": "t1", "worker_id": "w2", "lease_epoch": 1, **extra},
            "lease_mismatch")
        assert wrong_worker["message"] == "task t1 is not leased to worker w2 at epoch 1"
    await client.ok("task.succeed", {"task_id": "t1", "worker_id": "w1", "lease_epoch": 1})


async def test_conflict_when_another_writer_keeps_winning(tmp_path: Path) -> None:
    """With no retries left, a write that lost to another replica's is refused as conflict."""
    settings = Settings(data_dir=tmp_path, occ_retries=0)
    async with memory_service(settings=settings) as client:
        await client.ok("run.create", {"run_id": "r1", "name": "n"})
        await _start_behind_the_services_back(client, "r1")
        error = await client.refused("run.cancel", {"run_id": "r1"}, "conflict")
        assert error["details"] == {"attempts": 1}
        await client.still_serving()


async def test_a_stale_cache_is_refreshed_and_the_command_redecided(client: ServiceClient
                                                                   ) -> None:
    """With retries, the same race ends in a decision on the fresh state."""
    await client.ok("run.create", {"run_id": "r1", "name": "n"})
    await _start_behind_the_services_back(client, "r1")
    error = await client.refused("run.start", {"run_id": "r1"}, "invalid_transition")
    assert error["message"] == "run r1 is running; start needs pending"
    reply = await client.ok("run.succeed", {"run_id": "r1"})
    assert reply["version"] == 3


async def _start_behind_the_services_back(client: ServiceClient, run_id: str) -> None:
    """Appends RunStarted the way another replica would (before this one's follower reads it)."""
    store = client.store
    last = await store.last_on_subject(event_subject("run", run_id))
    assert last is not None
    started = EventEnvelope(type="RunStarted", schema_version=1, event_id="other-replica",
                            aggregate="run", aggregate_id=run_id, version=2,
                            occurred_at=utc_now(), command_id="other-replica-start",
                            from_state="pending", to_state="running", data={"run_id": run_id})
    await store.append([OutgoingMessage(event_subject("run", run_id), started.to_json(),
                                        "other-replica-start:0", {}, Expectation(last.seq))])
