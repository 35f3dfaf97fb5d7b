"""How every runlog process connects to NATS: server lists, TLS, credentials, inbox prefix.

One place reads the connection settings, so the service, the broker, the CLI and the
read-side clients all connect the same way (``RUNLOG_NATS_URL`` may name a cluster as
a comma-separated list; TLS and credentials apply to every connection). FastStream's
form of the same options is in ``services.nats_broker``; this module imports no
FastStream, so the worker SDK can use it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from typing import Any

import nats
import nats.errors
from nats.aio.client import Client

from .errors import ConfigError, StoreUnavailable
from .nats_headers import use_fast_headers
from .settings import Settings

__all__ = ["connect_nats", "connection_options", "credentials", "server_list", "tls_context"]

log = logging.getLogger(__name__)


def server_list(url: str) -> list[str]:
    """``nats://a:4222,nats://b:4222`` as the list nats-py takes (blanks ignored)."""
    servers = [part.strip() for part in url.split(",") if part.strip()]
    if not servers:
        raise ConfigError(f"RUNLOG_NATS_URL={url!r} names no server")
    return servers


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """A client TLS context from ``RUNLOG_NATS_TLS_*``; None when none is set."""
    if not (settings.nats_tls_ca or settings.nats_tls_cert or settings.nats_tls_key):
        return None
    if bool(settings.nats_tls_cert) != bool(settings.nats_tls_key):
        raise ConfigError("RUNLOG_NATS_TLS_CERT and RUNLOG_NATS_TLS_KEY go together "
                          "(a client certificate needs its key)")
    try:
        context = ssl.create_default_context(
            cafile=str(settings.nats_tls_ca) if settings.nats_tls_ca else None)
        if settings.nats_tls_cert and settings.nats_tls_key:
            context.load_cert_chain(str(settings.nats_tls_cert), str(settings.nats_tls_key))
    except (OSError, ssl.SSLError) as error:
        raise ConfigError(f"RUNLOG_NATS_TLS_*: cannot load the TLS files: {error}") from None
    return context


def credentials(settings: Settings) -> dict[str, str]:
    """The credentials file or NKey seed file nats-py is to authenticate with, checked."""
    if settings.nats_creds is not None and settings.nats_nkey_seed is not None:
        raise ConfigError("RUNLOG_NATS_CREDS and RUNLOG_NATS_NKEY_SEED exclude each other")
    for name, path, option in (("RUNLOG_NATS_CREDS", settings.nats_creds, "user_credentials"),
                               ("RUNLOG_NATS_NKEY_SEED", settings.nats_nkey_seed, "nkeys_seed")):
        if path is not None:
            if not path.is_file():
                raise ConfigError(f"{name}={path}: no such file")
            return {option: str(path)}
    return {}


def connection_options(settings: Settings) -> dict[str, Any]:
    """The keyword arguments of every nats-py connection runlog makes."""
    options: dict[str, Any] = {"inbox_prefix": settings.nats_inbox_prefix,
                               **credentials(settings)}
    if (context := tls_context(settings)) is not None:
        options["tls"] = context
    return options


async def _log_nats_error(error: Exception) -> None:
    # nats-py's default prints a traceback for every failed (re)connect attempt.
    log.warning("NATS: %s", error or type(error).__name__)


async def connect_nats(url: str, name: str = "runlog", timeout_s: float = 15.0, *,
                       settings: Settings | None = None, fail_fast: bool = False) -> Client:
    """Connects with a deadline: nats-py alone keeps retrying a first connect for minutes.

    ``fail_fast`` (one-shot clients such as CLI verbs): no reconnects, and the first
    refusal is the answer. Otherwise the connection reconnects without end.
    """
    reconnect: dict[str, Any] = (
        {"allow_reconnect": False, "max_reconnect_attempts": 0} if fail_fast
        else {"max_reconnect_attempts": -1, "reconnect_time_wait": 0.5})
    options = connection_options(settings) if settings is not None else {}
    try:
        return use_fast_headers(await asyncio.wait_for(
            nats.connect(server_list(url), name=name, connect_timeout=min(5.0, timeout_s),
                         error_cb=_log_nats_error, **reconnect, **options), timeout_s))
    except (TimeoutError, OSError, nats.errors.Error) as error:
        reason = str(error) or type(error).__name__
        raise StoreUnavailable(f"cannot reach NATS at {_without_secrets(url)} ({reason})"
                               ) from None


def _without_secrets(url: str) -> str:
    """The server list with any ``user:password@`` left out, for messages."""
    return re.sub(r"//[^@/]*@", "//", url)
