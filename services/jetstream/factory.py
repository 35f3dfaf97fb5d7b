"""The infrastructure factory ``eventsourcing`` finds through ``PERSISTENCE_MODULE``."""

from __future__ import annotations

import re
from typing import Any

from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    InfrastructureFactory,
    ProcessRecorder,
)
from eventsourcing.utils import Environment, EnvType, resolve_topic, strtobool

from services.errors import ConfigError
from services.nats_connection import connection_options
from services.settings import ENV_PREFIX, load_settings

from .datastore import JetStreamDatastore, JetStreamSettings
from .recorders import (
    JetStreamAggregateRecorder,
    JetStreamApplicationRecorder,
    JetStreamProcessRecorder,
    JetStreamRecorder,
    JetStreamTrackingRecorder,
)

__all__ = ["JetStreamFactory"]

_CONNECTION = ("nats_tls_ca", "nats_tls_cert", "nats_tls_key", "nats_creds", "nats_nkey_seed",
               "nats_inbox_prefix")


class JetStreamFactory(InfrastructureFactory[JetStreamTrackingRecorder]):
    """Builds JetStream recorders for one application, all sharing one NATS connection."""

    NATS_URL = "RUNLOG_NATS_URL"
    STREAM = "RUNLOG_ES_STREAM"
    SUBJECT_PREFIX = "RUNLOG_ES_SUBJECT_PREFIX"
    REPLICAS = "RUNLOG_REPLICAS"
    DUPLICATE_WINDOW_S = "RUNLOG_DUPLICATE_WINDOW_S"
    TIMEOUT_S = "RUNLOG_ES_TIMEOUT_S"
    CREATE_TABLE = "CREATE_TABLE"

    aggregate_recorder_class = JetStreamAggregateRecorder
    application_recorder_class = JetStreamApplicationRecorder
    tracking_recorder_class = JetStreamTrackingRecorder
    process_recorder_class = JetStreamProcessRecorder

    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
        self.datastore = JetStreamDatastore(self._settings())

    def _settings(self) -> JetStreamSettings:
        url = self.env.get(self.NATS_URL)
        if not url:
            keys = ", ".join(self.env.create_keys(self.NATS_URL))
            raise OSError(f"NATS server URL not found in environment with keys: {keys}")
        stream = self.env.get(self.STREAM) or default_stream(self.env.name)
        if not re.fullmatch(r"[A-Za-z0-9_-]+", stream):
            raise OSError(f"invalid stream name {stream!r} in {self.STREAM}")
        return JetStreamSettings(
            servers=tuple(u.strip() for u in url.split(",") if u.strip()),
            stream=stream,
            subject_prefix=self.env.get(self.SUBJECT_PREFIX) or stream.lower(),
            replicas=int(self._number(self.REPLICAS, 1, int)),
            duplicate_window_s=self._number(self.DUPLICATE_WINDOW_S, 120.0, float),
            timeout_s=self._number(self.TIMEOUT_S, 5.0, float),
            nats_options=self._connection_options(),
        )

    def _connection_options(self) -> dict[str, Any]:
        """TLS, credentials and inbox prefix from the same ``RUNLOG_NATS_*`` variables as
        every runlog connection (the application's environment first)."""
        given = {name: self.env.get(f"{ENV_PREFIX}{name.upper()}") for name in _CONNECTION}
        try:
            return connection_options(load_settings(**given))
        except ConfigError as error:
            raise OSError(str(error)) from None

    def _number(self, key: str, default: float, kind: type[int] | type[float]) -> int | float:
        text = (self.env.get(key) or "").strip()
        try:
            value = kind(text) if text else default
        except ValueError:
            raise OSError(f"{key} must be a number, not {text!r}") from None
        if value <= 0:
            raise OSError(f"{key} must be positive, not {text!r}")
        return value

    def _prepared(self, recorder: JetStreamRecorder) -> None:
        if strtobool(self.env.get(self.CREATE_TABLE) or "yes"):
            recorder.create_stream()

    def aggregate_recorder(self, purpose: str = "events") -> AggregateRecorder:
        """Constructs the recorder of ``purpose`` ("events" or "snapshots") records."""
        recorder = self.aggregate_recorder_class(self.datastore, self.datastore.log(purpose))
        self._prepared(recorder)
        return recorder

    def application_recorder(self) -> ApplicationRecorder:
        """Constructs the application recorder (the events stream)."""
        topic = self.env.get(self.APPLICATION_RECORDER_TOPIC)
        cls = resolve_topic(topic) if topic else self.application_recorder_class
        assert issubclass(cls, JetStreamApplicationRecorder)
        recorder = cls(self.datastore, self.datastore.log("events"))
        self._prepared(recorder)
        return recorder

    def tracking_recorder(
        self, tracking_recorder_class: type[JetStreamTrackingRecorder] | None = None
    ) -> JetStreamTrackingRecorder:
        """Constructs a tracking recorder on its own stream."""
        cls = tracking_recorder_class
        if cls is None:
            topic = self.env.get(self.TRACKING_RECORDER_TOPIC)
            cls = resolve_topic(topic) if topic else self.tracking_recorder_class
        assert issubclass(cls, JetStreamTrackingRecorder)
        recorder = cls(self.datastore, self.datastore.log("tracking"))
        self._prepared(recorder)
        return recorder

    def process_recorder(self) -> ProcessRecorder:
        """Constructs a process recorder (events and tracking on the events stream)."""
        topic = self.env.get(self.PROCESS_RECORDER_TOPIC)
        cls = resolve_topic(topic) if topic else self.process_recorder_class
        assert issubclass(cls, JetStreamProcessRecorder)
        recorder = cls(self.datastore, self.datastore.log("events"))
        self._prepared(recorder)
        return recorder

    def close(self) -> None:
        """Stops subscriptions, closes the NATS connection and joins the loop thread."""
        self.datastore.close()


def default_stream(application_name: str) -> str:
    """``ES_<APPLICATION NAME>``, upper case, other characters as underscores."""
    name = re.sub(r"[^A-Za-z0-9_-]", "_", application_name).upper()
    return f"ES_{name}" if name else "ES"
