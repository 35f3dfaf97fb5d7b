"""The fast header parser gives what nats-py's own parser gives, for any header block."""

from __future__ import annotations

import asyncio

import nats.errors
import pytest
from hypothesis import given
from hypothesis import strategies as st
from nats.aio.client import Client

from services.nats_headers import encode_plain_headers, parse_plain_headers, use_fast_headers

STORED_EVENT = (b"NATS/1.0\r\nNats-Msg-Id: cmd-1f2e-0\r\n"
                b"traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n"
                b"Nats-Expected-Last-Subject-Sequence: 12\r\n\r\n")

ODD_BLOCKS = [
    b"",
    b"NATS/1.0\r\n\r\n",
    b"NATS/1.0 503\r\n\r\n",
    b"NATS/1.0 404 No Messages\r\n\r\n",
    b"NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 16\r\nNats-Last-Stream: 24\r\n\r\n",
    b"NATS/1.0 100 FlowControl Request\r\n\r\n",
    b"NATS/1.0\r\n a b: c\r\nx:y\r\n\r\n",
    b"NATS/1.0\r\nno colon here\r\nk:  v \r\n\r\n",
    "NATS/1.0\r\nké: v\r\nname: välue\r\n\r\n".encode(),
    b"NATS/1.0\r\nname: \xff\xfe\r\n\r\n",
    b"NATS/1.0\r\nk: 1\r\nk: 2\r\n\r\n",
    b"NATS/1.0\r\n  padded  :  value  \r\n\r\n",
]


def _both(block: bytes) -> tuple[object, object]:
    """What each parser makes of the block: its headers, or the error it raises (nats-py
    itself raises on some inline-status blocks; so must the fast one)."""
    plain, fast = Client(), use_fast_headers(Client())

    async def outcome(client: Client) -> object:
        try:
            return await client._process_headers(block)
        except ValueError as error:
            return type(error)

    async def parse() -> tuple[object, object]:
        return await outcome(fast), await outcome(plain)

    return asyncio.run(parse())


@pytest.mark.parametrize("block", [STORED_EVENT, *ODD_BLOCKS])
def test_a_block_parses_as_nats_py_parses_it(block: bytes) -> None:
    fast, plain = _both(block)
    assert fast == plain


def test_a_stored_events_headers_take_the_fast_path() -> None:
    assert parse_plain_headers(STORED_EVENT) == {
        "Nats-Msg-Id": "cmd-1f2e-0",
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "Nats-Expected-Last-Subject-Sequence": "12",
    }


@pytest.mark.parametrize("block", [b"NATS/1.0 503\r\n\r\n", b"NATS/1.0\r\n a: b\r\n\r\n",
                                   b"NATS/1.0\r\nno colon\r\n\r\n"])
def test_a_block_that_is_not_plain_is_left_to_nats_py(block: bytes) -> None:
    assert parse_plain_headers(block) is None


_LINE = st.builds(
    lambda name, sep, value: name + sep + value,
    # Mostly plain names (the fast path), some of any bytes (left to nats-py).
    st.one_of(st.text(st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=":"),
                      min_size=1, max_size=12).map(str.encode),
              st.binary(max_size=12).filter(lambda b: b"\r\n" not in b)),
    st.sampled_from([b":", b": ", b"", b" : "]),
    st.binary(max_size=20).filter(lambda b: b"\r\n" not in b),
)


@given(st.lists(_LINE, max_size=6), st.sampled_from([b"NATS/1.0\r\n", b"NATS/1.0 100\r\n"]))
def test_any_block_parses_as_nats_py_parses_it(lines: list[bytes], head: bytes) -> None:
    block = head + b"\r\n".join(lines) + b"\r\n\r\n"
    fast, plain = _both(block)
    assert fast == plain


def _sent(client: Client, headers: dict[str, str]) -> object:
    """The protocol command ``client`` queues for one publish with ``headers``, or the
    error it raises."""
    sent: list[bytes] = []

    async def capture(command: bytes, priority: bool = False) -> None:
        sent.append(command)

    async def publish() -> object:
        client._send_command = capture  # type: ignore[method-assign,assignment]
        client._flush_queue = None  # nothing to kick: the command is only captured
        try:
            await client._send_publish("runlog.evt.run.r1", "_INBOX.x.1", b"{}", 2, headers)
        except nats.errors.Error as error:
            return type(error)
        return sent[0]

    return asyncio.run(publish())


APPEND_HEADERS = {"Nats-Msg-Id": "cmd-1f2e:0", "Nats-Expected-Last-Subject-Sequence": "12",
                  "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}

ODD_HEADERS = [
    {"k": " padded value \t"},
    {"k": "a\r\nINJECTED 1\r\n"},
    {" padded": "v"},
    {"": "skipped"},
    {"bad name": "v"},
    {"k": "välue"},
    {},
]


@pytest.mark.parametrize("headers", [APPEND_HEADERS, *ODD_HEADERS])
def test_headers_are_sent_as_nats_py_sends_them(headers: dict[str, str]) -> None:
    assert _sent(use_fast_headers(Client()), headers) == _sent(Client(), headers)


def test_an_appends_headers_take_the_fast_path() -> None:
    assert encode_plain_headers(APPEND_HEADERS) == (
        b"NATS/1.0\r\nNats-Msg-Id: cmd-1f2e:0\r\nNats-Expected-Last-Subject-Sequence: 12\r\n"
        b"traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\r\n")
    assert encode_plain_headers({" padded": "v"}) is None


@given(st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=5))
def test_any_headers_are_sent_as_nats_py_sends_them(headers: dict[str, str]) -> None:
    assert _sent(use_fast_headers(Client()), headers) == _sent(Client(), headers)
