"""`runlog up` as a user runs it: serves, refuses a second instance, stops without orphans."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.e2e.cli import (
    nats_children,
    read_side_children,
    runlog,
    start_up,
    stop_up,
    wait_for_instance,
)

pytestmark = [pytest.mark.nats, pytest.mark.slow]


def wait_gone(data_dir: Path, timeout_s: float = 15) -> list[int]:
    """Waits for the embedded nats-server and the read side's process to be gone; the left."""
    deadline = time.monotonic() + timeout_s
    while ((left := nats_children(data_dir) + read_side_children(data_dir))
           and time.monotonic() < deadline):
        time.sleep(0.05)
    return left


def test_up_serves_refuses_a_second_instance_and_stops_on_sigint(tmp_path: Path) -> None:
    up = start_up(tmp_path)
    try:
        wait_for_instance(tmp_path, up)
        assert len(nats_children(tmp_path)) == 1
        sent = runlog(tmp_path, "send", "run.create", '{"run_id": "r1", "name": "demo"}')
        assert sent.returncode == 0, sent.stderr
        assert json.loads(sent.stdout)["events"] == ["RunCreated"]
        second = runlog(tmp_path, "up", timeout_s=60)
        assert second.returncode == 1
        assert "already running" in second.stderr
        assert "Traceback" not in second.stderr
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=30) == 0, up.stderr.read()  # type: ignore[union-attr]
    finally:
        up.kill()
        up.wait()
    assert wait_gone(tmp_path) == []
    assert not (tmp_path / "instance.json").exists()


def test_sigterm_stops_the_service_and_its_read_side_cleanly(tmp_path: Path) -> None:
    up = start_up(tmp_path)
    try:
        wait_for_instance(tmp_path, up)
        assert len(read_side_children(tmp_path)) == 1
        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=15) == 0, up.stderr.read()  # type: ignore[union-attr]
    finally:
        up.kill()
        up.wait()
    assert wait_gone(tmp_path) == []


def test_kill_9_leaves_no_nats_server_and_no_read_side_behind(tmp_path: Path) -> None:
    up = start_up(tmp_path)
    wait_for_instance(tmp_path, up)
    assert nats_children(tmp_path)
    assert len(read_side_children(tmp_path)) == 1
    up.kill()
    up.wait()
    assert wait_gone(tmp_path) == []


def test_up_stops_with_an_error_when_its_nats_server_dies(tmp_path: Path) -> None:
    up = start_up(tmp_path)
    try:
        wait_for_instance(tmp_path, up)
        [server] = nats_children(tmp_path)
        os.kill(server, signal.SIGKILL)
        assert up.wait(timeout=30) == 1  # exits, for its supervisor to start it again
        err = up.stderr.read()  # type: ignore[union-attr]
        assert "the embedded nats-server exited with code -9: runlog is stopping" in err
        assert "Traceback" not in err
    finally:
        up.kill()
        up.wait()
    assert wait_gone(tmp_path) == []
    restarted = start_up(tmp_path)  # and a new start serves the same data directory
    try:
        wait_for_instance(tmp_path, restarted)
    finally:
        stop_up(restarted)


def send_while_up(data_dir: Path, subject: str, body: Mapping[str, object]
                  ) -> dict[str, object]:
    up = start_up(data_dir)
    try:
        wait_for_instance(data_dir, up)
        reply: dict[str, object] = json.loads(runlog(data_dir, "send", subject,
                                                      json.dumps(body)).stdout)
        return reply
    finally:
        stop_up(up)


def test_the_log_and_command_ids_survive_a_restart(tmp_path: Path) -> None:
    create = {"run_id": "r1", "name": "x", "command_id": "create-r1"}
    first = send_while_up(tmp_path, "run.create", create)
    assert first["ok"] is True
    retried = send_while_up(tmp_path, "run.create", create)
    assert retried == first
    other = send_while_up(tmp_path, "run.create", {"run_id": "r1", "name": "x"})
    assert other["ok"] is False
    assert other["error"]["code"] == "already_exists"  # type: ignore[index]


def test_send_without_a_running_service_is_one_line(tmp_path: Path) -> None:
    result = runlog(tmp_path, "send", "run.create", "{}")
    assert result.returncode == 1
    assert result.stderr.startswith("runlog: runlog up is not running")
    assert "Traceback" not in result.stderr
