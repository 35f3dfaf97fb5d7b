"""The connection options of ``services.nats_connection`` in the form FastStream's broker takes."""

from __future__ import annotations

from typing import Any

from faststream.nats.security import NatsCredentials, NatsNKey, NatsSecurity

from .nats_connection import credentials, tls_context
from .settings import Settings

__all__ = ["broker_options"]


def broker_options(settings: Settings) -> dict[str, Any]:
    """The same options in the form FastStream's ``NatsBroker`` takes them."""
    context, secrets = tls_context(settings), credentials(settings)
    security: NatsSecurity | None = None
    if "user_credentials" in secrets:
        security = NatsCredentials(secrets["user_credentials"], ssl_context=context)
    elif "nkeys_seed" in secrets:
        security = NatsNKey.from_file(secrets["nkeys_seed"], ssl_context=context)
    elif context is not None:
        security = NatsSecurity(ssl_context=context)
    return {"inbox_prefix": settings.nats_inbox_prefix, "security": security}
