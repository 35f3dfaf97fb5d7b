"""The embedded nats-server's process: the cores its Go runtime is given."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from services.embedded_nats import EmbeddedNats, go_procs

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="reads the server's environment from /proc")


def test_go_runtime_gets_half_the_cores_at_least_one() -> None:
    assert [go_procs(cpus) for cpus in (1, 2, 3, 4, 16)] == [1, 1, 1, 2, 8]


def server_environment(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def test_the_server_runs_on_half_the_cores(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOMAXPROCS", raising=False)
    with EmbeddedNats(tmp_path) as server:
        assert server.process is not None
        assert server_environment(server.process.pid)["GOMAXPROCS"] == str(go_procs())


def test_a_gomaxprocs_of_the_callers_own_is_kept(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOMAXPROCS", "3")
    with EmbeddedNats(tmp_path) as server:
        assert server.process is not None
        assert server_environment(server.process.pid)["GOMAXPROCS"] == "3"
