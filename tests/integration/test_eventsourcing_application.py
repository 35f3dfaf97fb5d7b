"""An ``eventsourcing`` application persisting to JetStream, end to end."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import nats.js.errors
import pytest
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError

from services.jetstream import JetStreamFactory
from tests.support.nats_server import unique_stream_name

pytestmark = pytest.mark.nats


class Budget(Aggregate):
    """A spending budget: opened with a limit, then charged."""

    @event("Opened")
    def __init__(self, owner: str, limit_cents: int) -> None:
        self.owner = owner
        self.limit_cents = limit_cents
        self.spent_cents = 0

    @event("Charged")
    def charge(self, cents: int) -> None:
        self.spent_cents += cents


class Budgets(Application[UUID]):
    """Opens and charges budgets; snapshots every third version."""

    snapshotting_intervals = {Budget: 3}

    def open(self, owner: str, limit_cents: int) -> UUID:
        budget = Budget(owner, limit_cents)
        self.save(budget)
        return budget.id

    def charge(self, budget_id: UUID, cents: int) -> None:
        budget: Budget = self.repository.get(budget_id)
        budget.charge(cents)
        self.save(budget)

    def spent(self, budget_id: UUID) -> int:
        budget: Budget = self.repository.get(budget_id)
        return budget.spent_cents


@pytest.fixture
def env(nats_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The process environment selecting JetStream persistence, on a fresh stream."""
    settings = {
        "PERSISTENCE_MODULE": "services.jetstream",
        "RUNLOG_NATS_URL": nats_url,
        "BUDGETS_RUNLOG_ES_STREAM": unique_stream_name("ES"),
        "IS_SNAPSHOTTING_ENABLED": "y",
    }
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    yield settings
    app = Budgets()
    assert isinstance(app.factory, JetStreamFactory)
    app.factory.datastore.run(_drop(app.factory, settings["BUDGETS_RUNLOG_ES_STREAM"]))
    app.close()


async def _drop(factory: JetStreamFactory, stream: str) -> None:
    js = factory.datastore.nc.jetstream()
    for name in (stream, f"{stream}_SNAPSHOTS"):
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.delete_stream(name)


def test_application_saves_reloads_snapshots_and_shares_the_stream(env: dict[str, str]) -> None:
    app = Budgets()
    other: Budgets | None = None
    try:
        assert isinstance(app.factory, JetStreamFactory)
        budget_id = app.open("team-a", 10_000)
        for cents in (100, 250, 400, 50):
            app.charge(budget_id, cents)
        assert app.spent(budget_id) == 800

        assert app.snapshots is not None
        snapshot = next(iter(app.snapshots.get(budget_id, desc=True, limit=1)))
        assert snapshot.originator_version == 3
        assert_reload_starts_after_snapshot(app, budget_id)

        log = app.notification_log.select(start=1, limit=10)
        assert [n.id for n in log] == [1, 2, 3, 4, 5]
        assert [n.originator_version for n in log] == [1, 2, 3, 4, 5]
        assert log[0].topic.endswith("Budget.Opened")
        assert len(app.notification_log["1,10"].items) == 5

        other = Budgets()
        assert other.spent(budget_id) == 800
        other.charge(budget_id, 200)
        assert app.spent(budget_id) == 1000
        assert_stale_save_is_refused(app, other, budget_id)
    finally:
        app.close()
        if other is not None:
            other.close()


def assert_reload_starts_after_snapshot(app: Budgets, budget_id: UUID) -> None:
    """Reloading reads the snapshot, then only the events after it."""
    calls: list[dict[str, Any]] = []
    recorder = app.events.recorder
    original = recorder.select_events

    def spy(originator_id: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return original(originator_id, **kwargs)

    recorder.select_events = spy  # type: ignore[method-assign]
    try:
        budget: Budget = app.repository.get(budget_id)
    finally:
        del recorder.select_events
    assert (budget.version, budget.spent_cents) == (5, 800)
    assert [c.get("gt") for c in calls] == [3]


def assert_stale_save_is_refused(app: Budgets, other: Budgets, budget_id: UUID) -> None:
    """Two instances holding the same version: the second save is a conflict, not a fork."""
    mine: Budget = app.repository.get(budget_id)
    theirs: Budget = other.repository.get(budget_id)
    mine.charge(1)
    theirs.charge(2)
    app.save(mine)
    with pytest.raises(IntegrityError):
        other.save(theirs)
    assert other.spent(budget_id) == 1001


def test_subscription_sees_events_saved_by_another_instance(env: dict[str, str]) -> None:
    app, other = Budgets(), Budgets()
    received: list[Any] = []
    try:
        with app.recorder.subscribe(gt=None) as subscription:

            def read() -> None:
                for notification in subscription:
                    received.append(notification)
                    if len(received) == 2:
                        return

            reader = threading.Thread(target=read, daemon=True)
            reader.start()
            budget_id = other.open("team-b", 500)
            other.charge(budget_id, 5)
            reader.join(10)
            assert not reader.is_alive(), f"only {len(received)} notifications within 10 s"
        assert [(n.id, n.originator_version) for n in received] == [(1, 1), (2, 2)]
    finally:
        app.close()
        other.close()
