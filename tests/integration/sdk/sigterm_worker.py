"""Worker processes for the drain test: ``python -m tests.integration.sdk.sigterm_worker FILE``.

Two workers of one process, each holding one task until FILE exists (reporting
progress meanwhile). One SIGTERM drains both (the SDK's default signal handling).
It connects to ``RUNLOG_NATS_URL``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping
from pathlib import Path

from services.sdk import TaskContext, Worker, WorkerConfig, connect

WORKER_IDS = ("sdk-sigterm-1", "sdk-sigterm-2")
KIND = "held"


async def main(release: Path) -> None:
    """Works until SIGTERM, then drains and deregisters."""
    async def held(task: TaskContext) -> Mapping[str, object]:
        while not await asyncio.to_thread(release.exists):
            task.progress()
            await asyncio.sleep(0.02)
        return {"released": True}

    async with connect() as client:
        workers = [Worker(client, worker_id, held, kinds=[KIND],
                          config=WorkerConfig(idle_backoff_max_s=0.1))
                   for worker_id in WORKER_IDS]
        await asyncio.gather(*(worker.run() for worker in workers))


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
