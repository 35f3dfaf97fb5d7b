"""The client over a fake transport: typed replies and errors, and what is retried, how often."""

from __future__ import annotations

import pytest

from services.sdk import (
    ClaimReply,
    Client,
    CommandError,
    CommandTimeout,
    ErrorCode,
    QueryError,
    RetryPolicy,
    SdkError,
)
from services.sdk.testing import TIMEOUT, FakeRunlog, error, ok

NO_WAIT = RetryPolicy(attempts=4, wait_initial_s=0, wait_max_s=0, wait_jitter_s=0)


@pytest.fixture
def fake() -> FakeRunlog:
    """The transport, recording what the client sends."""
    return FakeRunlog()


@pytest.fixture
def client(fake: FakeRunlog) -> Client:
    """A client that retries without waiting."""
    return Client(fake, retry=NO_WAIT)


async def test_a_lost_reply_is_resent_byte_for_byte_with_the_same_command_id(
        fake: FakeRunlog, client: Client) -> None:
    fake.script("run.start", TIMEOUT, TIMEOUT, ok("r1", seq=7, events=("RunStarted",)))
    reply = await client.start_run(run_id="r1")
    assert reply.seq == 7
    assert reply.events == ("RunStarted",)
    payloads = [s.payload for s in fake.sent]
    assert len(payloads) == 3
    assert len(set(payloads)) == 1
    assert fake.of("run.start")[0]["command_id"]
    assert (client.stats.requests, client.stats.retries) == (3, 2)


@pytest.mark.parametrize("code", ["conflict", "unavailable"])
async def test_transient_refusals_are_retried_with_the_same_command_id(
        fake: FakeRunlog, client: Client, code: str) -> None:
    fake.script("task.submit", error(code), ok("t1", seq=3, events=("TaskSubmitted",)))
    reply = await client.submit_task(run_id="r1", kind="llm")
    assert reply.id == "t1"
    ids = {body["command_id"] for body in fake.of("task.submit")}
    assert len(fake.of("task.submit")) == 2
    assert len(ids) == 1


@pytest.mark.parametrize("code", ["lease_mismatch", "invalid_transition", "validation_failed",
                                  "budget_exceeded", "not_found", "internal"])
async def test_a_definitive_refusal_is_raised_typed_after_one_request(
        fake: FakeRunlog, client: Client, code: str) -> None:
    fake.script("task.succeed", error(code, "no", lease_epoch=2))
    with pytest.raises(CommandError) as raised:
        await client.succeed_task(task_id="t1", worker_id="w1", lease_epoch=1)
    assert raised.value.code == code
    assert isinstance(raised.value.code, ErrorCode)
    assert raised.value.subject == "runlog.cmd.task.succeed"
    assert raised.value.message == "no"
    assert raised.value.details == {"lease_epoch": 2}
    assert len(fake.sent) == 1


async def test_retries_are_bounded_and_end_in_a_timeout_error(
        fake: FakeRunlog, client: Client) -> None:
    fake.script("worker.heartbeat", *[TIMEOUT] * 10)
    with pytest.raises(CommandTimeout) as raised:
        await client.heartbeat_worker(worker_id="w1")
    assert raised.value.code == ErrorCode.UNAVAILABLE
    assert len(fake.sent) == NO_WAIT.attempts


async def test_conflicts_past_the_bound_raise_the_last_conflict(
        fake: FakeRunlog, client: Client) -> None:
    fake.script("run.succeed", *[error("conflict")] * 10)
    with pytest.raises(CommandError, match="conflict"):
        await client.succeed_run(run_id="r1")
    assert len(fake.sent) == NO_WAIT.attempts


async def test_one_attempt_means_no_retry(fake: FakeRunlog) -> None:
    fake.script("run.start", TIMEOUT, ok())
    with pytest.raises(CommandTimeout):
        await Client(fake, retry=RetryPolicy(attempts=1)).start_run(run_id="r1")
    assert len(fake.sent) == 1


async def test_the_callers_command_id_is_kept_and_none_fields_left_out(
        fake: FakeRunlog, client: Client) -> None:
    await client.create_run(name="n", command_id="c-1", labels={"team": "a"})
    assert fake.of("run.create") == [{"name": "n", "labels": {"team": "a"},
                                      "auto_end": False, "cache_results": False,
                                      "command_id": "c-1"}]


async def test_each_command_gets_its_own_command_id(fake: FakeRunlog, client: Client) -> None:
    await client.start_run(run_id="r1")
    await client.start_run(run_id="r1")
    first, second = fake.of("run.start")
    assert first["command_id"] != second["command_id"]


async def test_a_claim_reply_is_typed_and_keeps_fields_it_does_not_know(
        fake: FakeRunlog, client: Client) -> None:
    fake.submit("t1", prompt="hi")
    fake.script("task.claim", ok("w1", 5, ("TaskLeased",), task=None, novelty=1))
    empty = await client.claim_task(worker_id="w1")
    assert isinstance(empty, ClaimReply)
    assert empty.task is None
    assert empty.model_extra == {"novelty": 1}
    claimed = await client.claim_task(worker_id="w1", kinds=("llm",))
    assert claimed.task is not None
    assert (claimed.task.task_id, claimed.task.lease_epoch) == ("t1", 1)
    assert claimed.task.payload == {"prompt": "hi"}
    assert fake.of("task.claim")[1]["kinds"] == ["llm"]


async def test_last_seq_is_the_highest_seq_replied(fake: FakeRunlog, client: Client) -> None:
    fake.script("run.start", ok(seq=9), ok(seq=4))
    await client.start_run(run_id="r1")
    await client.start_run(run_id="r2")
    assert client.last_seq == 9


async def test_a_reply_that_is_not_runlogs_is_an_sdk_error(fake: FakeRunlog,
                                                           client: Client) -> None:
    fake.script("run.start", {"hello": "world"})
    with pytest.raises(SdkError, match="not a runlog reply"):
        await client.start_run(run_id="r1")


async def test_a_query_after_a_reply_waits_for_its_seq(fake: FakeRunlog, client: Client) -> None:
    fake.script("runlog.sql.query", {"ok": True, "result": {
        "columns": ["state", "n"], "types": ["VARCHAR", "BIGINT"], "rows": [["queued", 2]],
        "truncated": False, "position": 12}})
    written = await client.start_run(run_id="r1")
    result = await client.query("SELECT state, count(*) AS n FROM tasks GROUP BY state",
                                after=written, limit=10)
    assert result.dicts() == [{"state": "queued", "n": 2}]
    assert result.position == 12
    request = fake.of("runlog.sql.query")[0]
    assert request["wait_seq"] == written.seq
    assert request["limit"] == 10


async def test_a_read_side_refusal_is_a_query_error(fake: FakeRunlog, client: Client) -> None:
    fake.script("runlog.sql.query", {"ok": False, "error": {"code": "wait_timeout",
                                                            "message": "not yet"}})
    with pytest.raises(QueryError) as raised:
        await client.query("SELECT 1", after=5)
    assert raised.value.code == "wait_timeout"
    assert len(fake.sent) == 1


async def test_a_busy_read_side_is_asked_again(fake: FakeRunlog, client: Client) -> None:
    busy = {"ok": False, "error": {"code": "unavailable", "message": "too many"}}
    fake.script("runlog.sql.query", busy, TIMEOUT, {"ok": True, "result": {
        "columns": [], "types": [], "rows": [], "truncated": False, "position": None}})
    assert (await client.query("SELECT 1")).rows == ()
    assert len(fake.sent) == 3
