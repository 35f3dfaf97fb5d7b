"""Fixtures of the end-to-end tests: a served ``runlog up`` shared by the HTTP tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.served import Served, serve_runlog


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One ``runlog up`` (HTTP on a free loopback port) with runs, tasks, workers and usage."""
    yield from serve_runlog(tmp_path_factory.mktemp("served") / "data")
