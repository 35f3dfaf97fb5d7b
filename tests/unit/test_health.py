"""The health judgement: pure, from observed facts to checks and an exit code."""

from __future__ import annotations

import asyncio

from services.health import Observation, Status, Thresholds, evaluate, observe

LIVE = {"component": "service", "name": "runlog up", "status": "ok", "value": 1.0,
        "detail": "running (pid 1 on h), last beat 1 s ago"}


def serving(**changes: object) -> Observation:
    facts: dict[str, object] = {
        "stream_last_seq": 100, "attention": [LIVE],
        "checkpoints": [{"projection": "runs", "last_seq": 100}]}
    return Observation(**(facts | changes))  # type: ignore[arg-type]


def statuses(facts: Observation, thresholds: Thresholds | None = None) -> dict[str, Status]:
    return {c.name: c.status for c in evaluate(facts, thresholds).checks}


def test_everything_serving_is_ok_with_exit_0() -> None:
    report = evaluate(serving())
    assert (report.status, report.exit_code) == (Status.OK, 0)
    assert set(statuses(serving())) == {"nats", "stream", "commands", "read_side", "projections",
                                         "workers", "breakers", "budgets", "projection_errors"}


def test_unreachable_nats_is_down_with_exit_2() -> None:
    report = evaluate(Observation(nats_error="runlog up is not running", attention=[]))
    assert (report.status, report.exit_code) == (Status.DOWN, 2)
    assert statuses(Observation(nats_error="x"))["nats"] is Status.DOWN


def test_a_missing_stream_a_silent_command_service_or_a_stopped_read_side_is_down() -> None:
    assert statuses(serving(stream_error="gone", stream_last_seq=None))["stream"] is Status.DOWN
    assert statuses(serving(commands_error="no responders"))["commands"] is Status.DOWN
    stopped = dict(LIVE, status="down", detail="down: stopped at ...")
    assert statuses(serving(attention=[stopped]))["read_side"] is Status.DOWN
    assert statuses(serving(attention=[]))["read_side"] is Status.DOWN
    assert statuses(serving(read_models_error="no read models"))["read_side"] is Status.DOWN


def test_lag_over_the_threshold_lost_workers_open_breakers_and_spent_budgets_degrade() -> None:
    lagging = serving(checkpoints=[{"projection": "runs", "last_seq": 10}])
    assert statuses(lagging, Thresholds(max_lag=50))["projections"] is Status.DEGRADED
    assert statuses(lagging, Thresholds(max_lag=90))["projections"] is Status.OK
    lost = {"component": "worker", "name": "w1", "status": "lost", "detail": "declared lost"}
    assert statuses(serving(attention=[LIVE, lost]))["workers"] is Status.DEGRADED
    opened = {"component": "breaker", "name": "acme", "status": "open", "detail": "open until"}
    probing = dict(opened, status="half_open")
    assert statuses(serving(attention=[LIVE, opened]))["breakers"] is Status.DEGRADED
    assert statuses(serving(attention=[LIVE, probing]))["breakers"] is Status.OK
    spent = serving(exhausted_budgets=[{"budget_id": "b1"}])
    report = evaluate(spent)
    assert (report.status, report.exit_code) == (Status.DEGRADED, 1)
    assert "b1" in next(c.detail for c in report.checks if c.name == "budgets")


def test_the_worst_check_wins() -> None:
    lost = {"component": "worker", "name": "w1", "status": "lost", "detail": "declared lost"}
    report = evaluate(serving(attention=[LIVE, lost], commands_error="no responders"))
    assert report.status is Status.DOWN
    assert report.to_dict()["exit_code"] == 2


class _Reconnecting:
    """A NATS client that lost its connection: anything asked of it would wait it out."""

    is_connected = False

    def jetstream(self, **kwargs: object) -> object:
        raise AssertionError("the stream is not asked while NATS is gone")

    async def request(self, *args: object, **kwargs: object) -> object:
        raise AssertionError("the command service is not asked while NATS is gone")


async def test_a_reconnecting_client_is_nats_down_at_once() -> None:
    async def no_rows(sql: str) -> list[dict[str, object]]:
        return []

    facts = await observe(_Reconnecting(), no_rows)  # type: ignore[arg-type]
    report = evaluate(facts)
    [nats] = [check for check in report.checks if check.name == "nats"]
    assert (nats.status, report.exit_code) == (Status.DOWN, 2)
    assert "lost" in nats.detail


class _Connected:
    """A connected client whose stream and command service answer only once every fact
    is being asked for: asked one after the other, the first would wait for ever."""

    is_connected = True

    def __init__(self, asked: list[str], all_asked: asyncio.Event) -> None:
        self.asked, self.all_asked = asked, all_asked

    async def _answer(self, what: str) -> None:
        self.asked.append(what)
        if len(self.asked) == 3:
            self.all_asked.set()
        await self.all_asked.wait()

    def jetstream(self, **kwargs: object) -> object:
        client = self

        class Js:
            async def stream_info(self, stream: str) -> object:
                await client._answer("stream")
                return type("Info", (), {"state": type("State", (), {"last_seq": 7})})()
        return Js()

    async def request(self, *args: object, **kwargs: object) -> object:
        await self._answer("commands")
        return object()


async def test_the_facts_are_asked_for_together() -> None:
    asked: list[str] = []
    nc = _Connected(asked, asyncio.Event())

    async def rows(sql: str) -> list[dict[str, object]]:
        if "read models" not in asked:
            await nc._answer("read models")
        await nc.all_asked.wait()
        return []

    facts = await asyncio.wait_for(observe(nc, rows), 5)  # type: ignore[arg-type]
    assert sorted(asked) == ["commands", "read models", "stream"]
    assert (facts.stream_last_seq, facts.commands_error) == (7, None)
