"""Every client verb and the SDK connect as the configured identity (an NKey seed, or a
``.creds`` file of a JWT user) with its own inbox.

The server knows only those users, and the client identity may subscribe to nothing but
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

import pytest

from services.bootstrap import serve
from services.sdk import connect
from services.settings import Settings
from tests.e2e.cli import runlog_env
from tests.support.nats_identities import creds_server_config, nkey_server_config
from tests.support.nats_process import NatsProcess, free_port

pytestmark = [pytest.mark.nats, pytest.mark.slow]


@dataclass(frozen=True)
class IdentityServer:
    """A nats-server that admits two identities, and the variable naming each one's key."""

    url: str
    variable: str
    """``RUNLOG_NATS_NKEY_SEED`` or ``RUNLOG_NATS_CREDS``."""
    service_key: Path
    agent_key: Path


@pytest.fixture(scope="module", params=["nkey", "creds"])
def identity_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[IdentityServer]:
    """The service may subscribe to anything; the agent only to ``_INBOX_agent.>``."""
    directory = Path(tmp_path_factory.mktemp(request.param))
    port = free_port()
    inboxes: dict[str, str | None] = {"service": None, "agent": "_INBOX_agent"}
    if request.param == "nkey":
        text, keys = nkey_server_config(directory, port, inboxes)
        variable = "RUNLOG_NATS_NKEY_SEED"
    else:
        text, keys = creds_server_config(directory, port, inboxes)
        variable = "RUNLOG_NATS_CREDS"
    config = directory / "server.conf"
    config.write_text(text)
    with NatsProcess(config, port) as server:
        yield IdentityServer(server.url, variable, keys["service"], keys["agent"])


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory, identity_server: IdentityServer) -> Path:
    return Path(tmp_path_factory.mktemp("identity-data"))


@pytest.fixture
async def service(identity_server: IdentityServer, data_dir: Path) -> AsyncIterator[Settings]:
    """runlog as the service identity."""
    by_seed = identity_server.variable == "RUNLOG_NATS_NKEY_SEED"
    settings = Settings(nats_url=identity_server.url, data_dir=data_dir,
                        nats_inbox_prefix="_INBOX_service",
                        nats_nkey_seed=identity_server.service_key if by_seed else None,
                        nats_creds=None if by_seed else identity_server.service_key)
    async with serve(settings, identity_server.url):
        yield settings


def agent_env(identity_server: IdentityServer) -> dict[str, str]:
    return {"RUNLOG_NATS_URL": identity_server.url,
            identity_server.variable: str(identity_server.agent_key),
            "RUNLOG_NATS_INBOX_PREFIX": "_INBOX_agent"}


async def as_agent(identity_server: IdentityServer, data_dir: Path, *args: str, seed: bool = True
                   ) -> subprocess.CompletedProcess[str]:
    """One CLI verb as the agent identity (the service, in this loop, holds the file)."""
    env = runlog_env(data_dir, agent_env(identity_server))
    if not seed:
        del env[identity_server.variable]
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.cli", *args, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return subprocess.CompletedProcess(args, process.returncode, out.decode(), err.decode())


async def test_every_verb_connects_as_the_agent_with_its_inbox(
        identity_server: IdentityServer, data_dir: Path, service: Settings) -> None:
    sent = await as_agent(identity_server, data_dir, "send", "run.create",
                    '{"run_id": "nk1", "name": "by nkey"}')
    assert sent.returncode == 0, sent.stderr
    seq = str(json.loads(sent.stdout)["seq"])
    table = await as_agent(identity_server, data_dir, "sql", "SELECT run_id FROM runs",
                           "--wait-seq", seq)
    assert table.returncode == 0, table.stderr
    assert "nk1" in table.stdout
    streamed = await as_agent(identity_server, data_dir, "sql", "SELECT run_id FROM runs",
                              "-o", "csv")
    assert (streamed.returncode, streamed.stdout) == (0, "run_id\nnk1\n"), streamed.stderr
    exported = await as_agent(identity_server, data_dir, "export", "by-agent")
    assert exported.returncode == 0, exported.stderr
    assert (Path(exported.stdout.strip()) / "runs.parquet").exists()
    for verb in (("status", "--once"), ("health",), ("run", "list"),
                 ("tail", "--from", "1", "--no-follow")):
        done = await as_agent(identity_server, data_dir, *verb)
        assert done.returncode == 0, (verb, done.stdout, done.stderr)
    replayed = await as_agent(identity_server, data_dir, "replay", "--until-seq", seq, "--quiet")
    assert replayed.returncode == 0, replayed.stderr
    assert f"up to seq {seq}" in replayed.stdout


async def test_without_the_seed_a_verb_is_refused_in_one_line(
        identity_server: IdentityServer, data_dir: Path, service: Settings) -> None:
    refused = await as_agent(identity_server, data_dir, "send", "run.create",
                             '{"name": "anonymous"}', seed=False)
    assert refused.returncode != 0
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "authorization" in refused.stderr.lower()


async def test_the_sdk_connects_as_the_agent_with_its_inbox(
        identity_server: IdentityServer, data_dir: Path, service: Settings,
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in agent_env(identity_server).items():
        monkeypatch.setenv(name, value)
    async with connect() as client:
        reply = await client.send("run.create", {"run_id": "nk2", "name": "by sdk"})
        rows = await client.query("SELECT name FROM runs WHERE run_id = 'nk2'", after=reply)
    assert [list(row) for row in rows.rows] == [["by sdk"]]
