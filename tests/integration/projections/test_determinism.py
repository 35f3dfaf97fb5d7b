"""Read models are a function of the log alone: live, killed and restarted, or rebuilt, alike.

kill -9 in the middle of a batch loses nothing and counts nothing twice, and batch sizes
change nothing. A random history is published in chunks of random sizes while a live
projector follows it (its batches cut wherever the chunks and timing cut them); a projector
process is then killed with SIGKILL inside batches of random sizes and restarted; a fresh
rebuild reads the log in big batches. Every table of the three files must hash the same,
MAP entry order included. ``tests/determinism_soak.py`` runs the same check on the real
service's workload.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from projections import ReadModelDb, build_read_models
from projections.runtime import Projector, ProjectorConfig
from services.store import JetStreamEventStore
from tests.support.projector_proc import kill_and_restart
from tests.support.read_side import publish_fast, random_history, serialised, table_digests

pytestmark = [pytest.mark.nats, pytest.mark.slow]


async def project_live(store: JetStreamEventStore, path: Path, messages: list[tuple[str, bytes]],
                       rng: random.Random) -> int:
    """Publishes in random chunks while a projector with a random batch size follows them."""
    db = ReadModelDb.open_writer(path)
    projector = Projector(store, db, ProjectorConfig(batch_size=rng.randint(8, 64),
                                                     linger_s=0.001))
    follower = asyncio.create_task(projector.run())
    try:
        while messages:
            cut = rng.randint(1, 150)
            await publish_fast(store, messages[:cut])
            messages = messages[cut:]
            await asyncio.sleep(rng.choice((0, 0.001, 0.01)))
        return await projector.wait_for_seq(await store.last_seq(), timeout_s=60)
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)
        db.close()


async def test_live_killed_and_rebuilt_read_models_hash_the_same(
    nats_url: str, store: JetStreamEventStore, tmp_path: Path
) -> None:
    seed = random.randrange(2**31)
    rng = random.Random(seed)
    history = random_history(rng, runs=16, max_tasks=8)
    live = tmp_path / "live.duckdb"
    last = await project_live(store, live, serialised(store, history.envelopes), rng)
    killed = tmp_path / "killed.duckdb"
    kill_and_restart(nats_url, store, killed, last, rng)
    rebuilt = await build_read_models(store, tmp_path / "rebuilt.duckdb")
    assert rebuilt.position == last
    expected = table_digests(rebuilt.path)
    assert expected["runs"][0] == 16
    assert table_digests(live) == expected, f"live differs from a rebuild (seed {seed})"
    assert table_digests(killed) == expected, f"killed differs from a rebuild (seed {seed})"


def test_the_digest_sees_the_order_of_map_entries(tmp_path: Path) -> None:
    paths = [tmp_path / "a.duckdb", tmp_path / "b.duckdb"]
    for path, counts in zip(paths, ("MAP {'queued': 1, 'running': 2}",
                                    "MAP {'running': 2, 'queued': 1}"), strict=True):
        db = ReadModelDb.open_writer(path)
        db.con.execute(f"INSERT INTO runs (run_id, task_counts) VALUES ('r1', {counts})")
        db.close()
    assert table_digests(paths[0])["runs"] != table_digests(paths[1])["runs"]
