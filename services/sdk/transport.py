"""How requests reach runlog: a small port, and its NATS request/reply adapter."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import nats.errors
from nats.aio.client import Client as NatsClient

from .errors import SdkError

__all__ = ["NatsTransport", "RequestTimeout", "Transport", "TransportError"]


class TransportError(SdkError):
    """The request could not be sent or answered (connection closed, bad subject, ...)."""


class RequestTimeout(TransportError):
    """No reply came in time, or nobody serves the subject right now; sending again may work."""

    @property
    def retryable(self) -> bool:
        """Always: the same request may be answered next time."""
        return True


class Transport(Protocol):
    """Sends one request and returns the reply's body."""

    async def request(self, subject: str, payload: bytes, timeout_s: float,
                      headers: Mapping[str, str] | None = None) -> bytes:
        """Returns the reply body; raises ``RequestTimeout`` when no reply comes in time."""
        ...


class NatsTransport:
    """NATS request/reply on a connection the caller owns (and closes)."""

    def __init__(self, nc: NatsClient) -> None:
        self.nc = nc

    async def request(self, subject: str, payload: bytes, timeout_s: float,
                      headers: Mapping[str, str] | None = None) -> bytes:
        """Returns the reply body; nats-py's errors become the SDK's own."""
        try:
            msg = await self.nc.request(subject, payload, timeout=timeout_s,
                                        headers=dict(headers) if headers else None)
        except nats.errors.NoRespondersError:
            raise RequestTimeout(f"{subject}: no responders (is runlog running?)") from None
        except nats.errors.TimeoutError:
            raise RequestTimeout(f"{subject}: no reply within {timeout_s:g} s") from None
        except nats.errors.Error as error:
            raise TransportError(f"{subject}: {error or type(error).__name__}") from None
        return bytes(msg.data)
