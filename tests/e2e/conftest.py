"""Fixtures of the end-to-end tests: a served ``runlog up`` shared by the HTTP tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.served import Served, serve_runlog
from tests.support.otlp_receiver import OtlpReceiver


@pytest.fixture(scope="session")
def otlp() -> Iterator[OtlpReceiver]:
    """A real OTLP/HTTP receiver on a free loopback port."""
    receiver = OtlpReceiver()
    yield receiver
    receiver.close()


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory, otlp: OtlpReceiver) -> Iterator[Served]:
    """One ``runlog up`` (HTTP on a free loopback port, spans to ``otlp``) with runs, tasks,
    workers and usage. Its ``runlog send`` clients export nothing."""
    yield from serve_runlog(tmp_path_factory.mktemp("served") / "data", otlp_env(otlp, "runlog"))


def otlp_env(receiver: OtlpReceiver, service: str) -> dict[str, str]:
    """The standard variables that send a process's spans to ``receiver``, promptly."""
    return {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_SERVICE_NAME": service,
            "OTEL_BSP_SCHEDULE_DELAY": "100"}
