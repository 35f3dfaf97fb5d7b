"""The shipped accounts and TLS configuration, on a real nats-server with a fresh CA.

The service and its clients connect over TLS with client certificates, each
identity with its own inbox prefix: no client can read another's replies, and
only the operator may use the admin subjects.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
import nats.errors
import pytest
import trustme
from nats.aio.client import Client
from nats.aio.msg import Msg

from services.bootstrap import serve
from services.errors import StoreUnavailable
from services.nats_connection import connect_nats, connection_options
from services.settings import Settings
from tests.support.nats_process import NatsProcess, free_port
from tests.support.nats_server import wait_until

pytestmark = [pytest.mark.nats, pytest.mark.slow]

DEPLOY = Path(__file__).parents[2] / "deploy" / "nats"
ROLES = ("SERVICE", "OPERATOR", "CLIENT", "ORCHESTRATOR", "READER")


@dataclass
class SecuredNats:
    """A TLS nats-server with the shipped accounts, and how each identity connects to it."""

    port: int
    certs: Path

    def url(self, user: str) -> str:
        """The identity's TLS URL (its password is its name, in these tests)."""
        return f"tls://{user}:{user}@127.0.0.1:{self.port}"

    def settings(self, user: str, data_dir: Path, **overrides: Any) -> Settings:
        """The identity's settings: the CA, a client certificate, its own inbox prefix."""
        values: dict[str, Any] = {
            "nats_url": self.url(user), "data_dir": data_dir,
            "nats_tls_ca": self.certs / "ca.pem", "nats_tls_cert": self.certs / "client.pem",
            "nats_tls_key": self.certs / "client.key", "nats_inbox_prefix": f"_INBOX_{user}"}
        return Settings(**(values | overrides))


def _write_certificates(directory: Path) -> None:
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    server = ca.issue_cert("127.0.0.1", "localhost")
    server.private_key_pem.write_to_path(str(directory / "server.key"))
    server.cert_chain_pems[0].write_to_path(str(directory / "server.pem"))
    client = ca.issue_cert("runlog-client@example.com")
    client.private_key_pem.write_to_path(str(directory / "client.key"))
    client.cert_chain_pems[0].write_to_path(str(directory / "client.pem"))


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredNats]:
    """nats-server with deploy/nats/accounts.conf and deploy/nats/tls.conf included."""
    directory = Path(tmp_path_factory.mktemp("secured"))
    _write_certificates(directory)
    for shipped in ("accounts.conf", "tls.conf"):
        shutil.copy(DEPLOY / shipped, directory / shipped)
    port = free_port()
    config = directory / "server.conf"
    config.write_text(f"listen: 127.0.0.1:{port}\n"
                      f"jetstream {{ store_dir: {json.dumps(str(directory / 'js'))} }}\n"
                      "include ./accounts.conf\ninclude ./tls.conf\n")
    env = {f"RUNLOG_{role}_PASSWORD": f"runlog-{role.lower()}" for role in ROLES} | {
        "RUNLOG_NATS_SERVER_CERT": str(directory / "server.pem"),
        "RUNLOG_NATS_SERVER_KEY": str(directory / "server.key"),
        "RUNLOG_NATS_SERVER_CA": str(directory / "ca.pem")}
    with NatsProcess(config, port, env):
        yield SecuredNats(port, directory)


@dataclass
class Identity:
    """A connection of one identity, with the errors the server sent it."""

    nc: Client
    errors: list[str] = field(default_factory=list)


async def _connect(settings: Settings) -> Identity:
    identity = Identity(nc=None)  # type: ignore[arg-type]

    async def record(error: Exception) -> None:
        identity.errors.append(str(error))

    assert settings.nats_url is not None
    identity.nc = await nats.connect(settings.nats_url, error_cb=record, allow_reconnect=False,
                                     **connection_options(settings))
    return identity


async def _count(errors: list[str]) -> int:
    return len(errors)


@pytest.fixture
async def service(secured: SecuredNats, tmp_path: Path) -> AsyncIterator[Settings]:
    """runlog (commands and read side) as the service identity, over TLS."""
    settings = secured.settings("runlog-service", tmp_path / "runlog")
    assert settings.nats_url is not None
    async with serve(settings, settings.nats_url):
        yield settings


async def test_a_client_cannot_read_another_clients_replies(
        secured: SecuredNats, service: Settings, tmp_path: Path) -> None:
    client = await _connect(secured.settings("runlog-client", tmp_path))
    spy = await _connect(secured.settings("runlog-orchestrator", tmp_path))
    seen: list[Msg] = []

    async def keep(msg: Msg) -> None:
        seen.append(msg)

    try:
        for stolen in ("_INBOX.>", "_INBOX_runlog-client.>", ">"):
            await spy.nc.subscribe(stolen, cb=keep)
        await wait_until(lambda: _count(spy.errors), lambda n: n >= 3)
        reply = json.loads((await client.nc.request(
            "runlog.cmd.run.create", b'{"run_id": "r1", "name": "private"}', timeout=10)).data)
        assert reply["ok"] is True, reply
        await spy.nc.flush()
        assert seen == []
        assert any("permissions violation for subscription" in e.lower() for e in spy.errors)
    finally:
        await client.nc.close()
        await spy.nc.close()


async def test_admin_subjects_answer_the_operator_only(
        secured: SecuredNats, service: Settings, tmp_path: Path) -> None:
    client = await _connect(secured.settings("runlog-client", tmp_path))
    operator = await _connect(secured.settings("runlog-operator", tmp_path))
    try:
        with pytest.raises(nats.errors.TimeoutError):
            await client.nc.request("runlog.sql.export", b'{"name": "stolen"}', timeout=1)
        assert any('permissions violation for publish to "runlog.sql.export"' in e.lower()
                   for e in client.errors), client.errors
        exported = json.loads((await operator.nc.request(
            "runlog.sql.export", b'{"name": "nightly", "format": "duckdb"}', timeout=30)).data)
        assert exported["ok"] is True, exported
        queried = json.loads((await client.nc.request(
            "runlog.sql.query", b'{"sql": "SELECT count(*) AS n FROM runs"}', timeout=30)).data)
        assert queried["ok"] is True, queried
    finally:
        await client.nc.close()
        await operator.nc.close()


async def test_only_tls_clients_with_a_certificate_get_in(
        secured: SecuredNats, tmp_path: Path) -> None:
    plain = secured.settings("runlog-client", tmp_path).nats_url
    assert plain is not None
    with pytest.raises(StoreUnavailable):
        await connect_nats(plain.replace("tls://", "nats://"), timeout_s=5, fail_fast=True)
    no_cert = secured.settings("runlog-client", tmp_path, nats_tls_cert=None, nats_tls_key=None)
    with pytest.raises(StoreUnavailable):
        await connect_nats(plain, timeout_s=5, settings=no_cert, fail_fast=True)
    nc = await connect_nats(plain, timeout_s=5, settings=secured.settings("runlog-client",
                                                                          tmp_path),
                            fail_fast=True)
    await nc.close()
