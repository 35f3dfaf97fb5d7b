"""The SDK finds the running runlog as the CLI does: a stale instance file fails at once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from services.sdk import SdkError, connect


def dead_pid() -> tuple[int, float]:
    """The pid and start time of a process that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    started = psutil.Process(child.pid).create_time()
    child.wait()
    return child.pid, started


async def test_an_instance_file_of_a_dead_process_fails_in_one_line_and_is_removed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pid, started = dead_pid()
    instance = tmp_path / "instance.json"
    # A port nothing listens on: were the file believed, connect would retry for 15 s.
    instance.write_text(json.dumps({"pid": pid, "nats_url": "nats://127.0.0.1:9",
                                    "started_at": started}))
    monkeypatch.delenv("RUNLOG_NATS_URL", raising=False)
    monkeypatch.setenv("RUNLOG_DATA_DIR", str(tmp_path))
    with pytest.raises(SdkError, match=r"^runlog up is not running on ") as refused:
        async with connect(connect_timeout_s=30):
            pass
    assert "\n" not in str(refused.value)
    assert not instance.exists()


async def test_a_bad_setting_is_one_line_naming_the_variable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNLOG_NATS_URL", "nats://127.0.0.1:9")
    monkeypatch.setenv("RUNLOG_NATS_NKEY_SEED", str(tmp_path / "missing.nk"))
    with pytest.raises(SdkError, match=r"RUNLOG_NATS_NKEY_SEED=.*missing\.nk: no such file"):
        async with connect():
            pass
