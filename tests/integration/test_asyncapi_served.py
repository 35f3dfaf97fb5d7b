"""The AsyncAPI document against a running runlog: every subject it answers is documented,
and every reply it sends is one (and only one) of the documented reply messages."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import nats
import pytest
from nats.aio.client import Client

from services.bootstrap import serve
from services.command_service.asyncapi import DOCUMENT
from services.settings import Settings
from tests.integration.test_asyncapi import resolve
from tests.support.nats_process import NatsProcess, free_port

pytestmark = [pytest.mark.nats, pytest.mark.slow]


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """A nats-server of this module's own, with its monitoring port (it lists subscriptions)."""
    directory = Path(tmp_path_factory.mktemp("monitored"))
    port, http_port = free_port(), free_port()
    config = directory / "server.conf"
    config.write_text(f"listen: 127.0.0.1:{port}\nhttp: 127.0.0.1:{http_port}\n"
                      f"jetstream {{ store_dir: {json.dumps(str(directory / 'js'))} }}\n")
    with NatsProcess(config, port) as server:
        yield server.url, http_port


@pytest.fixture
async def running(monitored: tuple[str, int], tmp_path: Path) -> AsyncIterator[Settings]:
    """The whole runlog (commands, policies, read side) on that server."""
    url, _ = monitored
    settings = Settings(nats_url=url, data_dir=tmp_path / "runlog")
    async with serve(settings, url):
        yield settings


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    """The committed document."""
    committed: dict[str, Any] = json.loads(DOCUMENT.read_text(encoding="utf-8"))
    return committed


def served_subjects(http_port: int, inbox_prefix: str) -> set[str]:
    """What every connection of the server subscribes to, less the inboxes replies come to."""
    with urllib.request.urlopen(
            f"http://127.0.0.1:{http_port}/connz?subs=detail&limit=1000", timeout=10) as answer:
        connections = json.load(answer)["connections"]
    subjects = {sub["subject"] for connection in connections
                for sub in connection.get("subscriptions_list_detail") or ()}
    return {subject for subject in subjects if not subject.startswith(inbox_prefix)}


def covers(pattern: str, subject: str) -> bool:
    """Whether a NATS subscription subject (``*``, ``>``) receives messages on ``subject``."""
    wanted, given = pattern.split("."), subject.split(".")
    for index, token in enumerate(wanted):
        if token == ">":
            return len(given) > index
        if index >= len(given) or token not in ("*", given[index]):
            return False
    return len(wanted) == len(given)


async def test_every_subject_the_service_answers_is_a_documented_channel(
        running: Settings, monitored: tuple[str, int], document: dict[str, Any]) -> None:
    _, http_port = monitored
    served = served_subjects(http_port, running.nats_inbox_prefix)
    documented = {channel["address"] for channel in document["channels"].values()
                  if channel.get("address") is not None}
    assert "runlog.sql.query" in served  # the listing does see the read side
    assert served <= documented  # nothing answered that the document leaves out
    unserved = {address for address in documented
                if not any(covers(subject, address) for subject in served)}
    assert unserved == set()
    assert covers("runlog.cmd.>", "runlog.cmd.run.create")
    assert not covers("runlog.cmd.*", "runlog.cmd.run.create")


async def test_every_documented_command_is_handled_not_unknown(
        running: Settings, document: dict[str, Any]) -> None:
    # One wildcard subscription may take them all: what counts is that each one is handled.
    commands = sorted(address for address in (c.get("address") for c in
                                              document["channels"].values())
                      if address and address.startswith("runlog.cmd.") and "*" not in address
                      and not address.endswith(">"))
    assert running.nats_url is not None
    nc = await nats.connect(running.nats_url)
    try:
        replies = await asyncio.gather(*(ask(nc, subject, {}) for subject in commands))
    finally:
        await nc.close()
    codes = {subject: reply.get("error", {}).get("code") for subject, reply in
             zip(commands, replies, strict=True)}
    assert len(codes) > 50
    assert [subject for subject, code in codes.items() if code == "unknown_command"] == []


def reply_validator(document: dict[str, Any], subject: str) -> list[tuple[str, Any]]:
    """Each reply message the document lists for ``subject``, with a validator of its payload."""
    operation = resolve(document["operations"][subject], document)
    return [(message["name"], jsonschema.Draft202012Validator(message["payload"]))
            for message in operation["reply"]["messages"]]


def matching(validators: list[tuple[str, Any]], reply: dict[str, Any]) -> list[str]:
    """The names of the documented replies ``reply`` is valid against."""
    return [name for name, validator in validators if validator.is_valid(reply)]


async def ask(nc: Client, subject: str, body: dict[str, Any]) -> dict[str, Any]:
    """One request; the decoded reply."""
    reply: dict[str, Any] = json.loads(
        (await nc.request(subject, json.dumps(body).encode(), timeout=30)).data)
    return reply


async def streamed(nc: Client, body: dict[str, Any]) -> list[dict[str, Any]]:
    """Every message of a streamed query, each part acknowledged as the document says."""
    inbox = nc.new_inbox()
    parts = await nc.subscribe(inbox)
    messages: list[dict[str, Any]] = []
    try:
        await nc.publish("runlog.sql.query", json.dumps(body | {"stream": True}).encode(),
                         reply=inbox)
        while True:
            msg = await parts.next_msg(timeout=30)
            messages.append(json.loads(msg.data))
            if "result" in messages[-1] or not messages[-1]["ok"]:
                return messages
            await nc.publish(msg.reply, b"")
    finally:
        await parts.unsubscribe()


async def test_every_reply_is_exactly_one_documented_message(
        running: Settings, document: dict[str, Any]) -> None:
    assert running.nats_url is not None
    nc = await nats.connect(running.nats_url)
    try:
        query = reply_validator(document, "runlog.sql.query")
        plain = await ask(nc, "runlog.sql.query", {"sql": "SELECT 1 AS one, 'a' AS letter"})
        assert plain["result"]["rows"] == [[1, "a"]]
        assert matching(query, plain) == ["QueryReply"]
        big = "SELECT n, repeat('x', 100) AS pad FROM range(30000) r(n)"
        parts = await streamed(nc, {"sql": big})
        assert len(parts) > 2  # 3 MB of rows: several parts, then the end
        assert [matching(query, part) for part in parts[:-1]] == [["StreamPart"]] * (
            len(parts) - 1)
        assert parts[-1]["result"]["rows"] == 30000
        assert matching(query, parts[-1]) == ["StreamEndReply"]
        for bad in ({"sql": "DROP TABLE runs"}, {"sql": "SELECT 1", "limit": "ten"}, {}):
            refused = await ask(nc, "runlog.sql.query", bad)
            assert matching(query, refused) == ["ErrorReply"], refused
        export = await ask(nc, "runlog.sql.export", {"name": "documented"})
        assert matching(reply_validator(document, "runlog.sql.export"), export) == [
            "ExportReply"], export
        wrong = await ask(nc, "runlog.sql.export", {"format": "xlsx"})
        assert wrong["error"]["code"] == "query_refused"
        assert matching(reply_validator(document, "runlog.sql.export"), wrong) == [
            "ErrorReply"]
        rebuilt = await asyncio.wait_for(ask(nc, "runlog.sql.rebuild", {}), 60)
        assert matching(reply_validator(document, "runlog.sql.rebuild"), rebuilt) == [
            "RebuildReply"], rebuilt
    finally:
        await nc.close()


async def test_command_replies_are_the_documented_envelope(
        running: Settings, document: dict[str, Any]) -> None:
    assert running.nats_url is not None
    nc = await nats.connect(running.nats_url)
    try:
        create = reply_validator(document, "runlog.cmd.run.create")
        made = await ask(nc, "runlog.cmd.run.create", {"run_id": "doc1", "name": "documented"})
        assert matching(create, made) == ["CommandAccepted"], made
        again = await ask(nc, "runlog.cmd.run.create", {"run_id": "doc1", "name": "again"})
        assert again["error"]["code"] == "already_exists"
        assert matching(create, again) == ["CommandRefused"], again
        invalid = await ask(nc, "runlog.cmd.run.create", {"name": 7})
        assert matching(create, invalid) == ["CommandRefused"], invalid
        claim = reply_validator(document, "runlog.cmd.task.claim")
        await ask(nc, "runlog.cmd.worker.register", {"worker_id": "w-doc", "kinds": ["k"]})
        nothing = await ask(nc, "runlog.cmd.task.claim", {"worker_id": "w-doc", "kinds": ["k"]})
        assert matching(claim, nothing) == ["CommandAccepted"], nothing
        unknown = await ask(nc, "runlog.cmd.run.fly", {})
        assert unknown["error"]["code"] == "unknown_command"
        assert matching(reply_validator(document, "runlog.cmd.>"), unknown) == [
            "CommandRefused"]
    finally:
        await nc.close()
