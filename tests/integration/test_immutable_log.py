"""The log is immutable: JetStream refuses to delete an event or purge the stream."""

from __future__ import annotations

import nats.js.errors
import pytest
from nats.aio.client import Client
from nats.js import api

from services.store import JetStreamEventStore
from tests.support.nats_server import unique_prefix, unique_stream_name

pytestmark = pytest.mark.nats

_DELETE_DENIED, _PURGE_DENIED = 10057, 10110


async def _assert_immutable(nc: Client, stream: str) -> None:
    js = nc.jetstream()
    with pytest.raises(nats.js.errors.APIError) as deleted:
        await js.delete_msg(stream, 1)
    assert deleted.value.err_code == _DELETE_DENIED
    with pytest.raises(nats.js.errors.APIError) as purged:
        await js.purge_stream(stream)
    assert purged.value.err_code == _PURGE_DENIED
    assert (await js.stream_info(stream)).state.messages == 1


async def test_a_new_stream_refuses_deletes_and_purges(store: JetStreamEventStore) -> None:
    await store.js.publish(f"{store.subject_prefix}.run.r1", b"{}", stream=store.stream)
    await _assert_immutable(store.nc, store.stream)


async def test_an_existing_deletable_stream_is_made_immutable_at_start(nc: Client) -> None:
    js, stream, prefix = nc.jetstream(), unique_stream_name(), unique_prefix()
    await js.add_stream(api.StreamConfig(name=stream, subjects=[f"{prefix}.>"]))
    try:
        await js.publish(f"{prefix}.run.r1", b"{}", stream=stream)
        await JetStreamEventStore(nc, stream=stream, subject_prefix=prefix).ensure_stream()
        config = (await js.stream_info(stream)).config
        assert (config.deny_delete, config.deny_purge) == (True, True)
        await _assert_immutable(nc, stream)
    finally:
        await js.delete_stream(stream)
