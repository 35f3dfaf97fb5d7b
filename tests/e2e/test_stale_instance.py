"""After a `kill -9` of `runlog up`: verbs say at once that nothing runs, and up starts again."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tests.e2e.cli import runlog, start_up, stop_up, wait_for_instance

pytestmark = [pytest.mark.nats, pytest.mark.slow]


def test_a_stale_instance_file_is_one_line_then_up_serves_again(tmp_path: Path) -> None:
    up = start_up(tmp_path)
    wait_for_instance(tmp_path, up)
    first = runlog(tmp_path, "send", "run.create", '{"run_id": "r1", "name": "before"}')
    assert first.returncode == 0, first.stderr
    up.send_signal(signal.SIGKILL)
    up.wait()
    assert (tmp_path / "instance.json").exists(), "a kill -9 leaves its file behind"

    sent = runlog(tmp_path, "send", "run.start", '{"run_id": "r1"}', timeout_s=30)
    assert sent.returncode == 1
    lines = sent.stderr.strip().splitlines()
    assert len(lines) == 1, sent.stderr
    assert lines[0].startswith(f"runlog: runlog up is not running on {tmp_path}"), lines
    assert not (tmp_path / "instance.json").exists()

    again = start_up(tmp_path)
    try:
        wait_for_instance(tmp_path, again)
        started = runlog(tmp_path, "send", "run.start", '{"run_id": "r1"}')
        assert started.returncode == 0, started.stderr
        assert json.loads(started.stdout)["events"] == ["RunStarted"]
    finally:
        stop_up(again)
