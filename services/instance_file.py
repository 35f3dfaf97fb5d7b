"""``<data dir>/instance.json``: how client verbs in another shell find a running ``runlog up``.

The file names the serving process by pid *and* start time, so a file left behind by a
``kill -9`` is recognised as stale even once the pid has been reused, and removed.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

__all__ = ["INSTANCE_FILE", "InstanceRecord", "read_live_instance", "remove_instance_file",
           "write_instance_file"]

INSTANCE_FILE = "instance.json"


@dataclass(frozen=True, slots=True)
class InstanceRecord:
    """Who serves a data directory, and on which NATS."""

    pid: int
    nats_url: str
    started_at: float
    """The process's start time (seconds since the epoch), as the kernel tells it."""
    http_url: str | None = None
    """Where its probes, metrics and dashboard are served, when they are."""

    def is_alive(self) -> bool:
        """Whether the process that wrote the record still runs (not a reuse of its pid)."""
        try:
            return _started_at(self.pid) == self.started_at
        except psutil.Error:
            return False


def _started_at(pid: int) -> float:
    return float(psutil.Process(pid).create_time())


def write_instance_file(data_dir: Path, nats_url: str, http_url: str | None = None) -> Path:
    """Writes this process's record atomically (a reader never sees half a file)."""
    record = InstanceRecord(os.getpid(), nats_url, _started_at(os.getpid()), http_url)
    path = data_dir / INSTANCE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{INSTANCE_FILE}.{record.pid}")
    partial.write_text(json.dumps(asdict(record)))
    os.replace(partial, path)
    return path


def remove_instance_file(data_dir: Path) -> None:
    """Removes the record (on a clean stop, or a stale one at start under the data dir lock)."""
    (data_dir / INSTANCE_FILE).unlink(missing_ok=True)


def read_live_instance(data_dir: Path) -> InstanceRecord | None:
    """The live ``runlog up`` serving ``data_dir``, or None (a stale file is removed)."""
    path = data_dir / INSTANCE_FILE
    try:
        text = path.read_text()
    except OSError:
        return None
    record = _parse(text)
    if record is not None and record.is_alive():
        return record
    _remove_if_unchanged(path, text)
    return None


def _parse(text: str) -> InstanceRecord | None:
    try:
        fields = json.loads(text)
        http_url = fields.get("http_url")
        return InstanceRecord(int(fields["pid"]), str(fields["nats_url"]),
                              float(fields["started_at"]), str(http_url) if http_url else None)
    except (ValueError, KeyError, TypeError):
        return None


def _remove_if_unchanged(path: Path, stale_text: str) -> None:
    # A new `runlog up` may have replaced the stale file since it was read: keep that one.
    with contextlib.suppress(OSError):
        if path.read_text() == stale_text:
            path.unlink()
