"""Two ``runlog up`` processes (commands only) on one NATS and one fresh stream."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import nats

from services.settings import Settings
from tests.e2e.cli import runlog_env
from tests.support.nats_server import wait_until
from tests.support.service_client import NatsServiceClient, fresh_stream

__all__ = ["Replicas", "two_replicas"]


@dataclass
class Replicas:
    """The client of both processes, the processes and their data directories."""

    client: NatsServiceClient
    processes: list[subprocess.Popen[bytes]]
    dirs: list[Path]

    def stderr(self) -> list[str]:
        """What each process wrote to stderr."""
        return [(d / "stderr.log").read_text(errors="replace") for d in self.dirs]


@contextlib.asynccontextmanager
async def two_replicas(nats_url: str, tmp_path: Path) -> AsyncIterator[Replicas]:
    """Starts both, waits until each serves, and kills whatever still runs at the end."""
    nc = await nats.connect(nats_url)
    try:
        async with fresh_stream(nc, nats_url, tmp_path / "unused") as settings:
            dirs = [tmp_path / "replica-a", tmp_path / "replica-b"]
            processes = [_start_up(d, settings) for d in dirs]
            try:
                await asyncio.gather(*(_serving(d, p) for d, p in zip(dirs, processes,
                                                                       strict=True)))
                yield Replicas(NatsServiceClient(nc, settings.stream), processes, dirs)
            finally:
                for process in processes:
                    if process.poll() is None:
                        process.kill()
                        process.wait()
    finally:
        await nc.close()


def _start_up(data_dir: Path, settings: Settings) -> subprocess.Popen[bytes]:
    """Starts ``runlog up`` (commands only) on the test's NATS and stream."""
    data_dir.mkdir(parents=True)
    env = runlog_env(data_dir) | {"RUNLOG_NATS_URL": str(settings.nats_url),
                                  "RUNLOG_STREAM": settings.stream}
    with (data_dir / "stderr.log").open("wb") as stderr:
        return subprocess.Popen([sys.executable, "-m", "services.cli", "up", "--no-projectors"],
                                env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=stderr)


async def _serving(data_dir: Path, process: subprocess.Popen[bytes]) -> None:
    async def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"runlog up exited early: "
                                 f"{(data_dir / 'stderr.log').read_text(errors='replace')}")
        return (data_dir / "instance.json").exists()

    await wait_until(ready, bool, timeout_s=60)
