"""How a client verb finds the running runlog and connects to its NATS, failing fast.

``find_running_instance`` is the one place that decides whether something serves this
data directory: ``RUNLOG_NATS_URL`` (or ``--server``), else the ``instance.json`` a live
``runlog up`` wrote. A file whose process is gone (left by a ``kill -9``; pid and start
time are checked, so a reused pid does not fool it) counts as nothing running and is
removed, so verbs say so in one line at once instead of retrying a dead address.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict

from services.errors import ServiceNotRunning

if TYPE_CHECKING:
    from nats.aio.client import Client

    from services.settings import Settings

__all__ = [
    "CONNECT_TIMEOUT_S",
    "ReadSideAccess",
    "RunningInstance",
    "connect",
    "find_running_instance",
    "nats_servers",
    "read_side_access",
    "running_instance",
    "running_nats_url",
    "running_nats_url_or_none",
]

CONNECT_TIMEOUT_S = 2.0


@dataclass(frozen=True, slots=True)
class RunningInstance:
    """Where the running runlog's NATS is, and the local process serving it (if local)."""

    nats_url: str
    pid: int | None
    """The local ``runlog up``; None when the server was named by setting or flag."""


def find_running_instance(settings: Settings) -> RunningInstance | None:
    """The configured NATS, or the live local ``runlog up``; None when nothing serves."""
    from services.instance_file import read_live_instance

    if settings.nats_url:
        return RunningInstance(settings.nats_url, None)
    record = read_live_instance(settings.data_dir)
    return RunningInstance(record.nats_url, record.pid) if record else None


def running_instance(settings: Settings) -> RunningInstance:
    """Like ``find_running_instance``, but raises ``ServiceNotRunning`` (one line) for None."""
    instance = find_running_instance(settings)
    if instance is None:
        raise ServiceNotRunning(
            f"runlog up is not running on {settings.data_dir} (start `runlog up`, "
            "or name a NATS server with --server or RUNLOG_NATS_URL)")
    return instance


def running_nats_url(settings: Settings) -> str:
    """The running runlog's NATS URL, or ``ServiceNotRunning``."""
    return running_instance(settings).nats_url


def running_nats_url_or_none(settings: Settings) -> str | None:
    """The running runlog's NATS URL, or None when nothing serves this data directory."""
    instance = find_running_instance(settings)
    return instance.nats_url if instance else None


class ReadSideAccess(TypedDict):
    """How the read-model calls of ``projections`` reach the service that holds the file."""

    nats_url: str | None
    nats_options: dict[str, Any]
    remote_first: bool


def read_side_access(settings: Settings, local_only: bool = False) -> ReadSideAccess:
    """The running runlog's NATS URL (None: nothing serves, or ``local_only``), the
    connection options every runlog connection uses (TLS, credentials, inbox prefix), and
    whether that service is asked before the local file: a server named with ``--server``
    or ``RUNLOG_NATS_URL`` is the one meant, whatever file the data directory holds."""
    from services.nats_connection import connection_options

    url = None if local_only else running_nats_url_or_none(settings)
    return {"nats_url": url, "nats_options": connection_options(settings) if url else {},
            "remote_first": bool(url and settings.nats_url)}


def nats_servers(url: str) -> list[str]:
    """A comma-separated server list as nats-py takes it."""
    from services.nats_connection import server_list

    return server_list(url)


@contextlib.asynccontextmanager
async def connect(settings: Settings, name: str = "runlog-cli") -> AsyncIterator[Client]:
    """A NATS connection to the running runlog that fails within seconds, in one line."""
    import nats
    import nats.errors

    from services.nats_connection import connection_options

    instance = running_instance(settings)

    async def quiet(error: Exception) -> None:
        """Connection errors are reported once, below, not logged by the client."""

    try:
        nc = await nats.connect(nats_servers(instance.nats_url), name=name,
                                connect_timeout=CONNECT_TIMEOUT_S, allow_reconnect=False,
                                max_reconnect_attempts=0, error_cb=quiet,
                                **connection_options(settings))
    except (OSError, TimeoutError, nats.errors.Error) as error:
        who = f"runlog up (pid {instance.pid})" if instance.pid else "NATS"
        raise ServiceNotRunning(f"{who} does not answer at {instance.nats_url}: "
                                f"{str(error) or type(error).__name__}") from None
    try:
        yield nc
    finally:
        await nc.close()
