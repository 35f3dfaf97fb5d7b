"""A small command client over NATS request/reply, as an agent or orchestrator would use."""

from __future__ import annotations

import json
from typing import Any

from nats.aio.client import Client

__all__ = ["CommandClient", "CommandRefused"]


class CommandRefused(Exception):
    """The service answered ``ok: false``."""

    def __init__(self, subject: str, error: dict[str, Any]) -> None:
        super().__init__(f"{subject}: {error['code']}: {error['message']}")
        self.code = str(error["code"])


class CommandClient:
    """Sends commands and tracks the highest sequence written (for read-your-writes)."""

    def __init__(self, nc: Client, timeout_s: float = 10.0) -> None:
        self._nc = nc
        self._timeout_s = timeout_s
        self.last_seq = 0
        self.sent = 0

    async def send(self, action: str, **body: Any) -> dict[str, Any]:
        """Sends ``runlog.cmd.<action>``; raises ``CommandRefused`` on an error reply."""
        subject = f"runlog.cmd.{action}"
        msg = await self._nc.request(subject, json.dumps(body).encode(), timeout=self._timeout_s)
        reply: dict[str, Any] = json.loads(msg.data)
        self.sent += 1
        if not reply["ok"]:
            raise CommandRefused(subject, reply["error"])
        self.last_seq = max(self.last_seq, int(reply["seq"]))
        return reply
