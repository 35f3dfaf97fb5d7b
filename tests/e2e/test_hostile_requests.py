"""Generated hostile requests against a running `runlog up`: each gets a reply, none crashes it.

Every request is answered with a contract error code (never ``internal``), and a
refused one writes nothing. The suite runs 150; ``tests/faults/hostile.sh``
runs 10,000 (``FAULTS_HOSTILE_EXAMPLES``).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nats.aio.client import Client

from events.commands import COMMANDS
from tests.e2e.cli import start_up, stop_up, wait_for_instance
from tests.support.service_client import ERROR_CODES

pytestmark = [pytest.mark.nats, pytest.mark.slow]

EXAMPLES = int(os.environ.get("FAULTS_HOSTILE_EXAMPLES", "150"))
_REPLY_TIMEOUT_S = 10.0

HOSTILE_TIMES = ["0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59", "0000-00-00",
                 "2026-13-40T25:61:61Z", "1e309", "", "now", "2026-12-01T00:00:00.9999999999Z"]
HOSTILE_TEXT = ["é" * 30, "é" * 128, "a.b", "*", ">", " ", "a" * 129, "\x00", "💥" * 40,
                "runlog.evt.run.r1", "../../etc/passwd", "_INBOX.x"]

_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=200),
    st.sampled_from(HOSTILE_TIMES + HOSTILE_TEXT),
)
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=10), inner, max_size=5)),
    max_leaves=20)


@st.composite
def hostile_request(draw: st.DrawFn) -> tuple[str, bytes]:
    """A subject (mostly a real command's) and a body (mostly JSON with its field names)."""
    subject = draw(st.one_of(st.sampled_from(sorted(COMMANDS)),
                             st.from_regex(r"\A[a-z]{1,8}(\.[a-z_]{1,8}){0,3}\Z")))
    command = COMMANDS.get(subject)
    fields = sorted(command.model_fields) if command else ["x"]
    body: Any = draw(st.dictionaries(st.sampled_from([*fields, "unknown", "command_id"]),
                                     _values, max_size=len(fields) + 1))
    raw = draw(st.one_of(st.just(json.dumps(body).encode()), st.binary(max_size=300),
                         st.just(b"[]"), st.just(b"{" * 2000), st.just(b'{"a":' * 600)))
    return subject, raw


@dataclass
class Target:
    """A connection to the service under test, on a loop the sync test drives."""

    loop: asyncio.AbstractEventLoop
    nc: Client

    def send(self, subject: str, body: bytes) -> tuple[dict[str, Any], int, int]:
        """The reply, and the stream's last sequence before and after it."""
        return self.loop.run_until_complete(self._send(subject, body))

    async def _send(self, subject: str, body: bytes) -> tuple[dict[str, Any], int, int]:
        js = self.nc.jetstream()
        before = (await js.stream_info("RUNLOG")).state.last_seq
        msg = await self.nc.request(f"runlog.cmd.{subject}", body, timeout=_REPLY_TIMEOUT_S)
        after = (await js.stream_info("RUNLOG")).state.last_seq
        return json.loads(msg.data), before, after


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """``runlog up --no-projectors`` in its own process, and a client of it."""
    data_dir = Path(tmp_path_factory.mktemp("hostile"))
    up = start_up(data_dir, "--no-projectors")
    loop = asyncio.new_event_loop()
    try:
        url = wait_for_instance(data_dir, up)
        nc = loop.run_until_complete(nats.connect(url))
        yield Target(loop, nc)
        loop.run_until_complete(nc.close())
    finally:
        stop_up(up)
        loop.close()


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(request=hostile_request())
def test_every_hostile_request_gets_a_contract_reply_and_a_refusal_writes_nothing(
        target: Target, request: tuple[str, bytes]) -> None:
    subject, body = request
    reply, before, after = target.send(subject, body)
    if reply.get("ok") is True:
        return
    code = reply["error"]["code"]
    assert code in ERROR_CODES - {"internal"}, (subject, body[:200], reply)
    assert after == before, f"{subject} refused with {code} but wrote"


@pytest.mark.parametrize(("subject", "body"), [
    ("model.register", {"model": "m", "provider": "p", "input_usd_per_mtok": 1,
                        "output_usd_per_mtok": 1, "effective_from": "0001-01-01T00:00:00+23:59"}),
    ("usage.record", {"run_id": "r1", "model": "é" * 30, "tokens_in": 1, "tokens_out": 1}),
], ids=["time-out-of-range-in-utc", "model-name-too-long-once-escaped"])
def test_inputs_that_once_broke_the_service_are_refused_cleanly(
        target: Target, subject: str, body: dict[str, Any]) -> None:
    reply, before, after = target.send(subject, json.dumps(body).encode())
    assert reply["ok"] is False, reply
    assert reply["error"]["code"] == "validation_failed", reply
    assert after == before
