"""The command service on NATS: one core subscription takes every command request.

The intake is a plain nats-py subscription on ``runlog.cmd.>`` in the service's queue
group, on the connection the FastStream broker owns (the one the store appends on and
the replies go out on, so a command costs one socket flush for its append and its
reply). NATS delivers each request to exactly one member of the queue group; the
executor dispatches on the message's real subject and answers ``unknown_command`` for
a subject no command is served on.

FastStream's per-message pipeline (decoder, dependency injection, middlewares) cost
about a sixth of the service's CPU per command, measured with py-spy, for nothing a
command uses: the executor validates bodies strictly itself. FastStream still runs
the app's lifecycle and owns the connection, and :func:`document_command_handlers`
gives it one subscriber per command so the AsyncAPI document shows every schema.

The callback only starts a task, so one subscription serves many requests at once; a
semaphore bounds the number in flight, which back-pressures the server when full.

Ack behaviour: these are core NATS request/reply subscriptions, not JetStream
consumers, so nothing is acked or redelivered; a lost reply is retried by the
client with the same ``command_id``, which the log answers idempotently.
"""

# Annotations here are evaluated eagerly: FastStream reads each handler's signature,
# and the schemas are closure variables a string annotation could not resolve.

import asyncio
import logging
from typing import Annotated, Any

from faststream.nats import NatsBroker
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import WithJsonSchema

from events import COMMAND_PREFIX
from events.base import Command
from events.commands import COMMANDS

from .replies import encode
from .telemetry import Executor

__all__ = ["CommandIntake", "document_command_handlers"]

log = logging.getLogger(__name__)

_PREFIX = COMMAND_PREFIX + "."

LATE_DELIVERY_S = 0.1
"""How long the intake still takes requests after the server has its UNSUB."""


class CommandIntake:
    """Answers command requests, each in its own task, at most ``max_in_flight`` at once."""

    def __init__(self, executor: Executor, max_in_flight: int = 256) -> None:
        self._executor = executor
        self._slots = asyncio.Semaphore(max_in_flight)
        self._tasks: set[asyncio.Task[None]] = set()
        self._nc: Client | None = None
        self._subscription: Subscription | None = None

    async def start(self, nc: Client, queue: str) -> None:
        """Subscribes to every command subject in ``queue`` on ``nc``."""
        self._nc = nc
        self._subscription = await nc.subscribe(f"{_PREFIX}>", queue=queue, cb=self._take)

    async def _take(self, msg: Msg) -> None:
        # Waiting here (all slots busy) holds the subscription: the server queues for us.
        await self._slots.acquire()
        task = asyncio.create_task(self._answer(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, msg: Msg) -> None:
        try:
            reply = await self._executor.execute(msg.subject.removeprefix(_PREFIX), msg.data,
                                                 msg.headers)
            if msg.reply and self._nc is not None:
                await self._nc.publish(msg.reply, encode(reply))
        except Exception:
            log.exception("reply to %s failed", msg.subject)
        finally:
            self._slots.release()

    async def stop_taking(self) -> None:
        """Drains the subscription: nothing new is taken, what was delivered is handled.

        A plain unsubscribe would drop the requests already delivered to this process but
        not yet handled, and their clients would wait for a reply that never comes.
        nats-py's drain forgets the subscription once the server answers a PING sent after
        the UNSUB; a request the server matched to it just before the UNSUB can still
        arrive after that answer (about one stop in twenty-five under 64 clients), so the
        interest is withdrawn first and the subscription kept for a moment more.
        """
        subscription, self._subscription = self._subscription, None
        if subscription is None or self._nc is None:
            return
        await self._nc._send_unsubscribe(subscription._id)  # the UNSUB drain sends too
        await self._nc.flush()
        await asyncio.sleep(LATE_DELIVERY_S)
        await subscription.drain()

    async def drain(self, timeout_s: float = 10.0) -> None:
        """Waits for the requests in flight (on shutdown)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)


def document_command_handlers(broker: NatsBroker, queue: str) -> None:
    """Gives ``broker`` one subscriber per command and the catch-all, for the AsyncAPI document.

    A broker documenting the service is never started: the intake serves the subjects.
    """
    for command_cls in COMMANDS.values():
        _document(broker, queue, f"{_PREFIX}{command_cls.subject}",
                  _inline_definitions(command_cls.model_json_schema()), _describe(command_cls),
                  command_cls.__name__)
    _document(broker, queue, f"{_PREFIX}>", {"type": "object"},
              "Any other subject under runlog.cmd: answered with unknown_command.",
              "UnknownCommand")


def _inline_definitions(schema: dict[str, Any]) -> dict[str, Any]:
    """The JSON schema with each ``#/$defs/...`` reference replaced by its definition."""
    # WithJsonSchema cannot carry ``$defs``: pydantic fails to resolve their references
    # when FastStream builds the AsyncAPI document. Commands are not recursive.
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, list):
            return [resolve(item) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            siblings = {key: resolve(value) for key, value in node.items() if key != "$ref"}
            return resolve(definitions[ref.removeprefix("#/$defs/")]) | siblings
        return {key: resolve(value) for key, value in node.items()}

    resolved: dict[str, Any] = resolve(schema)
    return resolved


def _describe(command_cls: type[Command]) -> str:
    doc = (command_cls.__doc__ or "").strip()
    return f"{doc} Replies with the runlog reply envelope (ok, id, version, seq, events)."


def _document(broker: NatsBroker, queue: str, subject: str, schema: dict[str, Any],
              description: str, name: str) -> None:
    async def handle(msg: Annotated[Any, WithJsonSchema(schema)]) -> None:
        raise RuntimeError("a documenting broker never handles a message")

    handle.__name__ = handle.__qualname__ = name
    broker.subscriber(subject, queue=queue, no_reply=True, title=subject,
                      description=description)(handle)
