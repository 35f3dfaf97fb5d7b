"""Testing without a server: ``FakeRunlog``, a transport that answers a worker's commands.

``Client(FakeRunlog())`` behaves like a client of runlog for what a worker sends:
claims hand out submitted tasks with a lease epoch, lease holders' commands are fenced
by that epoch, everything else gets a success reply. Every request is recorded; a
test scripts the next replies of a subject (a reply, or ``TIMEOUT`` for a lost reply)
and ``revoke``s a lease to fence its holder out. It is no model of runlog's rules:
integration tests against a real ``runlog`` still decide.
"""

from __future__ import annotations

import json
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from .transport import RequestTimeout

__all__ = ["TIMEOUT", "FakeRunlog", "Sent", "error", "ok"]

TIMEOUT = "timeout"
"""A scripted reply that never comes: the transport raises ``RequestTimeout``."""

Answer = dict[str, Any] | str


def ok(aggregate_id: str = "x", seq: int = 1, events: tuple[str, ...] = (), **extra: Any
       ) -> dict[str, Any]:
    """A success reply."""
    return {"ok": True, "id": aggregate_id, "version": 1, "seq": seq, "events": list(events),
            **extra}


def error(code: str, message: str = "refused", **details: Any) -> dict[str, Any]:
    """A failure reply."""
    return {"ok": False, "error": {"code": code, "message": message, "details": details}}


@dataclass(frozen=True)
class Sent:
    """One request as the transport received it."""

    subject: str
    """After ``runlog.cmd.`` (or the whole subject for other prefixes)."""
    body: dict[str, Any]
    payload: bytes


@dataclass
class FakeRunlog:
    """The transport: a minimal runlog for one worker's commands."""

    lease_ttl_s: float = 30.0
    sent: list[Sent] = field(default_factory=list)
    scripted: dict[str, deque[Answer]] = field(default_factory=lambda: defaultdict(deque))
    queued: deque[dict[str, Any]] = field(default_factory=deque)
    epochs: dict[str, int] = field(default_factory=dict)
    """The current lease epoch of each task handed out."""
    seq: int = 0

    def submit(self, task_id: str, **payload: Any) -> None:
        """Queues a task for the next claim."""
        self.queued.append({"task_id": task_id, "run_id": "r1", "kind": "llm", "priority": 5,
                            "payload": payload, "attempt": 1, "max_attempts": 3})

    def script(self, subject: str, *answers: Answer) -> None:
        """The next replies to ``subject``, before the default behaviour resumes."""
        self.scripted[subject].extend(answers)

    def revoke(self, task_id: str) -> None:
        """Another holder takes the task over: its lease epoch moves on."""
        self.epochs[task_id] += 1

    def of(self, subject: str) -> list[dict[str, Any]]:
        """The bodies sent to ``subject``, in order."""
        return [s.body for s in self.sent if s.subject == subject]

    def subjects(self) -> list[str]:
        """Every subject sent to, in order."""
        return [s.subject for s in self.sent]

    async def request(self, subject: str, payload: bytes, timeout_s: float,
                      headers: Mapping[str, str] | None = None) -> bytes:
        """Answers one request (the ``Transport`` port)."""
        short = subject.removeprefix("runlog.cmd.")
        body = json.loads(payload)
        self.sent.append(Sent(short, body, payload))
        answer = self.scripted[short].popleft() if self.scripted[short] else self._answer(
            short, body)
        if answer == TIMEOUT:
            raise RequestTimeout(f"{subject}: no reply (scripted)")
        return json.dumps(answer).encode()

    def _answer(self, subject: str, body: dict[str, Any]) -> dict[str, Any]:
        self.seq += 1
        handler = _HANDLERS.get(subject)
        return handler(self, body) if handler else ok(seq=self.seq)

    def _claim(self, body: dict[str, Any]) -> dict[str, Any]:
        if not self.queued:
            return ok(body["worker_id"], self.seq, task=None)
        task = self.queued.popleft()
        epoch = self.epochs.get(task["task_id"], 0) + 1
        self.epochs[task["task_id"]] = epoch
        expires = datetime.now(UTC) + timedelta(seconds=self.lease_ttl_s)
        return ok(task["task_id"], self.seq, ("TaskLeased",),
                  task=task | {"lease_epoch": epoch, "lease_expires_at": expires.isoformat()})


def _holder(event: str) -> Callable[[FakeRunlog, dict[str, Any]], dict[str, Any]]:
    """A lease holder's command: refused with ``lease_mismatch`` unless the epoch is current."""
    def answer(fake: FakeRunlog, body: dict[str, Any]) -> dict[str, Any]:
        if fake.epochs.get(body["task_id"]) != body["lease_epoch"]:
            return error("lease_mismatch",
                         f"task {body['task_id']} is not leased at epoch {body['lease_epoch']}")
        return ok(body["task_id"], fake.seq, (event,))
    return answer


_HANDLERS: dict[str, Callable[[FakeRunlog, dict[str, Any]], dict[str, Any]]] = {
    "task.claim": FakeRunlog._claim,
    "task.start": _holder("TaskStarted"),
    "task.heartbeat": _holder("TaskHeartbeatReceived"),
    "task.succeed": _holder("TaskSucceeded"),
    "task.fail": _holder("TaskRetryScheduled"),
}
