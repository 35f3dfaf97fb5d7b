"""The instance file: a live runlog is found; one left by a dead process is stale and removed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from services.instance_file import (
    INSTANCE_FILE,
    read_live_instance,
    remove_instance_file,
    write_instance_file,
)


def test_the_writer_is_found_while_it_lives(tmp_path: Path) -> None:
    write_instance_file(tmp_path, "nats://127.0.0.1:4999")
    record = read_live_instance(tmp_path)
    assert record is not None
    assert record.nats_url == "nats://127.0.0.1:4999"
    remove_instance_file(tmp_path)
    assert read_live_instance(tmp_path) is None


def test_a_file_left_by_a_dead_process_is_stale_and_removed(tmp_path: Path) -> None:
    script = ("import sys; from pathlib import Path; from services.instance_file import "
              "write_instance_file; write_instance_file(Path(sys.argv[1]), 'nats://x:1')")
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True)
    assert (tmp_path / INSTANCE_FILE).exists()
    assert read_live_instance(tmp_path) is None
    assert not (tmp_path / INSTANCE_FILE).exists()


def test_a_reused_pid_is_not_mistaken_for_the_writer(tmp_path: Path) -> None:
    write_instance_file(tmp_path, "nats://127.0.0.1:4999")
    path = tmp_path / INSTANCE_FILE
    fields = json.loads(path.read_text())
    # Same pid, another start time: what a pid reused after a kill -9 looks like.
    path.write_text(json.dumps(fields | {"started_at": fields["started_at"] - 1000}))
    assert read_live_instance(tmp_path) is None
    assert not path.exists()


def test_an_unreadable_file_counts_as_nothing_running(tmp_path: Path) -> None:
    (tmp_path / INSTANCE_FILE).write_text('{"nats_url": "nats://x:1"}')
    assert read_live_instance(tmp_path) is None
