"""The ``eventsourcing`` library's own recorder and factory suites, run on JetStream.

Every suite in ``eventsourcing.tests.persistence`` that applies runs here against
the session's real nats-server, each recorder on fresh streams. Nothing is skipped.
``ApplicationRecorderTestCase.optional_test_insert_subscribe`` (opt-in upstream)
is switched on.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

import eventsourcing.tests.persistence as suites
import nats.js.errors
import pytest
from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    DataError,
    InfrastructureFactory,
    IntegrityError,
    OperationalError,
    ProcessRecorder,
    ProgrammingError,
    StoredEvent,
    TrackingRecorder,
)
from eventsourcing.utils import Environment

from services.jetstream import (
    JetStreamAggregateRecorder,
    JetStreamApplicationRecorder,
    JetStreamFactory,
    JetStreamProcessRecorder,
    JetStreamTrackingRecorder,
)
from tests.support.nats_server import unique_stream_name

pytestmark = pytest.mark.nats


@pytest.fixture(autouse=True)
def _server_url(request: pytest.FixtureRequest, nats_url: str) -> None:
    """Hands the session's nats-server URL to the unittest-style suites."""
    if request.cls is not None:
        request.cls.nats_url = nats_url


def factory_env(nats_url: str, **extra: str) -> Environment:
    """An environment selecting this module, on a stream no other test uses."""
    env = {
        "PERSISTENCE_MODULE": "services.jetstream",
        JetStreamFactory.NATS_URL: nats_url,
        JetStreamFactory.STREAM: unique_stream_name("ES"),
        **extra,
    }
    return Environment("TestApp", env)


async def _delete_streams(factory: JetStreamFactory) -> None:
    js = factory.datastore.nc.jetstream()
    base = factory.datastore.settings.stream
    for name in (base, f"{base}_SNAPSHOTS", f"{base}_TRACKING"):
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.delete_stream(name)


def discard(factory: JetStreamFactory) -> None:
    """Deletes the factory's streams and closes it."""
    with contextlib.suppress(ProgrammingError):
        factory.datastore.run(_delete_streams(factory))
    factory.close()


class JetStreamCase:
    """Builds recorders on fresh streams and cleans up after each test."""

    nats_url: str
    addCleanup: Any

    def new_factory(self) -> JetStreamFactory:
        """A factory of its own, discarded after the test."""
        factory = InfrastructureFactory.construct(factory_env(self.nats_url))
        assert isinstance(factory, JetStreamFactory)
        self.addCleanup(discard, factory)
        return factory


class TestAggregateRecorder(JetStreamCase, suites.AggregateRecorderTestCase):
    def create_recorder(self) -> AggregateRecorder:
        return self.new_factory().aggregate_recorder()


class TestSnapshotRecorder(JetStreamCase, suites.AggregateRecorderTestCase):
    def create_recorder(self) -> AggregateRecorder:
        return self.new_factory().aggregate_recorder("snapshots")


class TestApplicationRecorder(JetStreamCase, suites.ApplicationRecorderTestCase):
    def create_recorder(self) -> ApplicationRecorder:
        return self.new_factory().application_recorder()

    def test_insert_subscribe(self) -> None:
        self.optional_test_insert_subscribe()


class TestApplicationRecorderWithStrIds(JetStreamCase, suites.ApplicationRecorderTestCase):
    def new_originator_id(self) -> str:
        return f"run.{time.monotonic_ns()} ünï/code*>"

    def create_recorder(self) -> ApplicationRecorder:
        return self.new_factory().application_recorder()

    def test_insert_subscribe(self) -> None:
        self.optional_test_insert_subscribe()


class TestNonInterleavingNotificationIds(
    JetStreamCase, suites.NonInterleavingNotificationIDsBaseCase
):
    def create_recorder(self) -> ApplicationRecorder:
        return self.new_factory().application_recorder()


class TestTrackingRecorder(JetStreamCase, suites.TrackingRecorderTestCase):
    def create_recorder(self) -> TrackingRecorder:
        return self.new_factory().tracking_recorder()


class TestProcessRecorder(JetStreamCase, suites.ProcessRecorderTestCase):
    def create_recorder(self) -> ProcessRecorder:
        return self.new_factory().process_recorder()


class CustomTrackingRecorder(JetStreamTrackingRecorder):
    """A subclass the factory suite asks for by class and by topic."""


class TestFactory(suites.InfrastructureFactoryTestCase[JetStreamFactory]):
    nats_url: str

    def setUp(self) -> None:
        self.env = factory_env(self.nats_url)
        super().setUp()

    def tearDown(self) -> None:
        with contextlib.suppress(ProgrammingError):
            self.factory.datastore.run(_delete_streams(self.factory))
        super().tearDown()

    def expected_factory_class(self) -> type[JetStreamFactory]:
        return JetStreamFactory

    def expected_aggregate_recorder_class(self) -> type[AggregateRecorder]:
        return JetStreamAggregateRecorder

    def expected_application_recorder_class(self) -> type[ApplicationRecorder]:
        return JetStreamApplicationRecorder

    def expected_tracking_recorder_class(self) -> type[TrackingRecorder]:
        return JetStreamTrackingRecorder

    def tracking_recorder_subclass(self) -> type[TrackingRecorder]:
        return CustomTrackingRecorder

    def expected_process_recorder_class(self) -> type[ProcessRecorder]:
        return JetStreamProcessRecorder


# -- what the suites leave out -------------------------------------------------------


@pytest.fixture
def factory(nats_url: str) -> Any:
    """A factory on fresh streams, discarded after the test."""
    made = InfrastructureFactory.construct(factory_env(nats_url))
    assert isinstance(made, JetStreamFactory)
    yield made
    discard(made)


def stored(originator_id: Any, version: int, topic: str = "topic") -> StoredEvent:
    return StoredEvent(originator_id, version, topic, f"state{version}".encode())


def test_two_factories_on_one_stream_refuse_the_same_version(
    factory: JetStreamFactory, nats_url: str
) -> None:
    first = factory.application_recorder()
    env = factory_env(nats_url, **{JetStreamFactory.STREAM: factory.datastore.settings.stream})
    other = JetStreamFactory(env)
    try:
        second = other.application_recorder()
        first.insert_events([stored("a", 1)])
        with pytest.raises(IntegrityError):
            second.insert_events([stored("b", 1), stored("a", 1)])
        assert second.select_events("b") == []
        assert second.insert_events([stored("a", 2)]) == [2]
    finally:
        other.close()


def test_versions_of_one_originator_must_ascend(factory: JetStreamFactory) -> None:
    recorder = factory.application_recorder()
    with pytest.raises(IntegrityError):
        recorder.insert_events([stored("a", 2), stored("a", 1)])
    assert recorder.max_notification_id() is None


def test_lte_below_the_last_version_reads_older_events(factory: JetStreamFactory) -> None:
    recorder = factory.aggregate_recorder("snapshots")
    recorder.insert_events([stored("a", v) for v in (3, 6, 9)])
    def versions(**query: Any) -> list[int]:
        return [e.originator_version for e in recorder.select_events("a", **query)]

    assert versions(lte=7, desc=True, limit=1) == [6]
    assert versions(gt=9, desc=True, limit=1) == []
    assert versions(gt=3, desc=True) == [9, 6]


def test_unusual_topics_round_trip(factory: JetStreamFactory) -> None:
    recorder = factory.application_recorder()
    topics = ["módulo:Événement", " padded ", ""]
    recorder.insert_events([stored("a", n, topic) for n, topic in enumerate(topics, start=1)])
    assert [n.topic for n in recorder.select_notifications(None, 10)] == topics


def test_notifications_page_past_one_direct_get_batch(factory: JetStreamFactory) -> None:
    recorder = factory.application_recorder()
    for chunk in range(3):
        recorder.insert_events([stored(f"o{chunk}", v) for v in range(1, 501)])
    assert [n.id for n in recorder.select_notifications(1, 1200)] == list(range(1, 1201))
    assert len(recorder.select_events("o1")) == 500
    tail = recorder.select_notifications(1490, 100, topics=["topic"])
    assert [n.id for n in tail] == list(range(1490, 1501))


def test_more_events_than_one_batch_holds_is_refused(factory: JetStreamFactory) -> None:
    recorder = factory.application_recorder()
    with pytest.raises(DataError):
        recorder.insert_events([stored("a", v) for v in range(1001)])
    assert recorder.max_notification_id() is None


def test_snapshots_take_no_notification_ids(factory: JetStreamFactory) -> None:
    events = factory.application_recorder()
    snapshots = factory.aggregate_recorder("snapshots")
    events.insert_events([stored("a", 1)])
    snapshots.insert_events([stored("a", 1)])
    assert events.insert_events([stored("a", 2)]) == [2]


def test_missing_url_is_an_environment_error() -> None:
    with pytest.raises(OSError, match="RUNLOG_NATS_URL"):
        JetStreamFactory(Environment("Bank", {}))


def test_app_prefixed_key_wins(nats_url: str) -> None:
    env = Environment(
        "Bank", {"BANK_RUNLOG_NATS_URL": nats_url, "RUNLOG_NATS_URL": "nats://127.0.0.1:1"}
    )
    made = JetStreamFactory(env)
    try:
        assert made.datastore.settings.servers == (nats_url,)
        assert made.datastore.settings.stream == "ES_BANK"
        assert made.datastore.settings.subject_prefix == "es_bank"
    finally:
        made.close()


def test_unreachable_server_is_an_operational_error() -> None:
    env = Environment("", {"RUNLOG_NATS_URL": "nats://127.0.0.1:1", "RUNLOG_ES_TIMEOUT_S": "0.3"})
    before = threading.active_count()
    with pytest.raises(OperationalError):
        JetStreamFactory(env)
    assert threading.active_count() == before


def test_closed_factory_refuses_work_and_leaks_no_thread(nats_url: str) -> None:
    before = {t.ident for t in threading.enumerate()}
    for _ in range(10):
        made = InfrastructureFactory.construct(factory_env(nats_url))
        assert isinstance(made, JetStreamFactory)
        recorder = made.application_recorder()
        subscription = recorder.subscribe(gt=None)
        discard(made)
        made.close()
        with pytest.raises(ProgrammingError):
            recorder.max_notification_id()
        with subscription:
            pass
    assert {t.ident for t in threading.enumerate()} <= before


def test_the_factory_connects_with_the_runlog_connection_settings(nats_url: str) -> None:
    made = JetStreamFactory(factory_env(nats_url, RUNLOG_NATS_INBOX_PREFIX="_INBOX_es"))
    try:
        assert made.datastore.nc.new_inbox().startswith("_INBOX_es.")
    finally:
        discard(made)
    with pytest.raises(OSError, match=r"RUNLOG_NATS_CREDS=.*nowhere\.creds: no such file"):
        JetStreamFactory(factory_env(nats_url, RUNLOG_NATS_CREDS="/nowhere.creds"))
