"""Running the ``runlog`` CLI as a user does, in a subprocess with its own data directory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["instance_info", "nats_children", "read_side_children", "runlog", "start_up",
           "stop_up", "wait_for_instance"]


def runlog_env(data_dir: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a CLI run: its own data dir, never a system NATS or a fixed port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNLOG_", "OTEL_"))}
    # Port 0: parallel runs (and other suites on the machine) never fight over 8321.
    return env | {"RUNLOG_DATA_DIR": str(data_dir), "RUNLOG_HTTP_ADDR": "127.0.0.1:0",
                  "PYTHONUNBUFFERED": "1"} | (extra or {})


def runlog(data_dir: Path, *args: str, timeout_s: float = 120,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Runs one CLI verb to completion (``env`` adds to or overrides its environment)."""
    return subprocess.run([sys.executable, "-m", "services.cli", *args],
                          env=runlog_env(data_dir, env), capture_output=True, text=True,
                          timeout=timeout_s, check=False)


def start_up(data_dir: Path, *args: str, env: dict[str, str] | None = None
             ) -> subprocess.Popen[str]:
    """Starts ``runlog up`` in the background."""
    return subprocess.Popen([sys.executable, "-m", "services.cli", "up", *args],
                            env=runlog_env(data_dir, env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def stop_up(process: subprocess.Popen[str], timeout_s: float = 30) -> None:
    """Stops ``runlog up`` as Ctrl-C does, and kills it if it does not stop in time."""
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=timeout_s)
    finally:
        process.kill()
        process.wait()


def instance_info(data_dir: Path) -> dict[str, object]:
    """What a serving ``runlog up`` wrote into its data directory (pid, NATS and HTTP URLs)."""
    info: dict[str, object] = json.loads((data_dir / "instance.json").read_text())
    return info


def wait_for_instance(data_dir: Path, process: subprocess.Popen[str], timeout_s: float = 60
                      ) -> str:
    """Waits until ``runlog up`` is serving; returns its NATS URL."""
    deadline = time.monotonic() + timeout_s
    instance = data_dir / "instance.json"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"runlog up exited early: {process.stderr.read()}")  # type: ignore[union-attr]
        if instance.exists():
            try:
                return str(json.loads(instance.read_text())["nats_url"])
            except (ValueError, KeyError):
                pass
        time.sleep(0.05)
    raise AssertionError(f"runlog up not ready within {timeout_s}s")


def nats_children(data_dir: Path) -> list[int]:
    """Pids of live nats-server processes whose store is under ``data_dir``."""
    return _live_processes(data_dir, lambda cmdline: cmdline[0].endswith(b"nats-server"))


def read_side_children(data_dir: Path) -> list[int]:
    """Pids of live read side processes (``services.read_side_child``) serving ``data_dir``."""
    return _live_processes(data_dir, lambda cmdline: b"services.read_side_child" in cmdline)


def _live_processes(data_dir: Path, matches: Callable[[list[bytes]], bool]) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z" and cmdline and matches(cmdline) and any(
                str(data_dir).encode() in part for part in cmdline):
            pids.append(int(proc.name))
    return pids
