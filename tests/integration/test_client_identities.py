"""Every client verb and the SDK connect as the configured identity: an NKey, its own inbox.

The server knows only NKey users, and the client identity may subscribe to nothing but
``_INBOX_agent.>``: a verb that connected without the seed would be refused, and one
that ignored ``RUNLOG_NATS_INBOX_PREFIX`` would never see its reply.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import nkeys
import pytest

from services.bootstrap import serve
from services.sdk import connect
from services.settings import Settings
from tests.e2e.cli import runlog_env
from tests.support.nats_process import NatsProcess, free_port

pytestmark = [pytest.mark.nats, pytest.mark.slow]


@dataclass(frozen=True)
class NkeyServer:
    """A nats-server that admits two NKey users, and where their seed files are."""

    url: str
    service_seed: Path
    agent_seed: Path


def _new_user(directory: Path, name: str) -> tuple[str, Path]:
    """A fresh user NKey: its public key, and a file holding its seed."""
    seed = nkeys.encode_seed(bytes(range(32)) if name == "service" else
                             bytes(range(32, 64)), nkeys.PREFIX_BYTE_USER)
    path = directory / f"{name}.nk"
    path.write_bytes(seed)
    return nkeys.from_seed(seed).public_key.decode(), path


@pytest.fixture(scope="module")
def nkey_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NkeyServer]:
    directory = Path(tmp_path_factory.mktemp("nkeys"))
    service_key, service_seed = _new_user(directory, "service")
    agent_key, agent_seed = _new_user(directory, "agent")
    port = free_port()
    config = directory / "server.conf"
    config.write_text(
        f"listen: 127.0.0.1:{port}\n"
        f"jetstream {{ store_dir: {json.dumps(str(directory / 'js'))} }}\n"
        "authorization { users: [\n"
        f"  {{ nkey: {service_key}, permissions: {{ publish: \">\", "
        "subscribe: [\"runlog.>\", \"_INBOX_service.>\"], allow_responses: true } }\n"
        f"  {{ nkey: {agent_key}, permissions: {{ publish: \">\", "
        "subscribe: \"_INBOX_agent.>\" } }\n"
        "] }\n")
    with NatsProcess(config, port) as server:
        yield NkeyServer(server.url, service_seed, agent_seed)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tmp_path_factory.mktemp("identity-data"))


@pytest.fixture
async def service(nkey_server: NkeyServer, data_dir: Path) -> AsyncIterator[Settings]:
    """runlog as the service identity."""
    settings = Settings(nats_url=nkey_server.url, data_dir=data_dir,
                        nats_nkey_seed=nkey_server.service_seed,
                        nats_inbox_prefix="_INBOX_service")
    async with serve(settings, nkey_server.url):
        yield settings


def agent_env(nkey_server: NkeyServer) -> dict[str, str]:
    return {"RUNLOG_NATS_URL": nkey_server.url,
            "RUNLOG_NATS_NKEY_SEED": str(nkey_server.agent_seed),
            "RUNLOG_NATS_INBOX_PREFIX": "_INBOX_agent"}


async def as_agent(nkey_server: NkeyServer, data_dir: Path, *args: str, seed: bool = True
                   ) -> subprocess.CompletedProcess[str]:
    """One CLI verb as the agent identity (the service, in this loop, holds the file)."""
    env = runlog_env(data_dir, agent_env(nkey_server))
    if not seed:
        del env["RUNLOG_NATS_NKEY_SEED"]
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.cli", *args, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return subprocess.CompletedProcess(args, process.returncode, out.decode(), err.decode())


async def test_every_verb_connects_as_the_agent_with_its_inbox(
        nkey_server: NkeyServer, data_dir: Path, service: Settings) -> None:
    sent = await as_agent(nkey_server, data_dir, "send", "run.create",
                    '{"run_id": "nk1", "name": "by nkey"}')
    assert sent.returncode == 0, sent.stderr
    seq = str(json.loads(sent.stdout)["seq"])
    table = await as_agent(nkey_server, data_dir, "sql", "SELECT run_id FROM runs",
                           "--wait-seq", seq)
    assert table.returncode == 0, table.stderr
    assert "nk1" in table.stdout
    streamed = await as_agent(nkey_server, data_dir, "sql", "SELECT run_id FROM runs", "-o", "csv")
    assert (streamed.returncode, streamed.stdout) == (0, "run_id\nnk1\n"), streamed.stderr
    exported = await as_agent(nkey_server, data_dir, "export", "by-agent")
    assert exported.returncode == 0, exported.stderr
    assert (Path(exported.stdout.strip()) / "runs.parquet").exists()
    for verb in (("status", "--once"), ("health",), ("run", "list"),
                 ("tail", "--from", "1", "--no-follow")):
        done = await as_agent(nkey_server, data_dir, *verb)
        assert done.returncode == 0, (verb, done.stdout, done.stderr)
    replayed = await as_agent(nkey_server, data_dir, "replay", "--until-seq", seq, "--quiet")
    assert replayed.returncode == 0, replayed.stderr
    assert f"up to seq {seq}" in replayed.stdout


async def test_without_the_seed_a_verb_is_refused_in_one_line(
        nkey_server: NkeyServer, data_dir: Path, service: Settings) -> None:
    refused = await as_agent(nkey_server, data_dir, "send", "run.create",
                             '{"name": "anonymous"}', seed=False)
    assert refused.returncode != 0
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "authorization" in refused.stderr.lower()


async def test_the_sdk_connects_as_the_agent_with_its_inbox(
        nkey_server: NkeyServer, data_dir: Path, service: Settings,
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in agent_env(nkey_server).items():
        monkeypatch.setenv(name, value)
    async with connect() as client:
        reply = await client.send("run.create", {"run_id": "nk2", "name": "by sdk"})
        rows = await client.query("SELECT name FROM runs WHERE run_id = 'nk2'", after=reply)
    assert [list(row) for row in rows.rows] == [["by sdk"]]
