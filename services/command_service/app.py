"""The command service as a FastStream NATS app: one subscriber per command subject.

Every subscriber, the ``runlog.cmd.>`` catch-all included, joins one queue group.
NATS delivers each request to exactly one member of a queue group across literal
and wildcard subscriptions, so a request is handled once, by whichever member got
it; each member dispatches on the message's real subject, and the executor answers
``unknown_command`` for a subject no command is served on.

Handlers hand the work to a task and return at once (replying themselves), so
one subscriber serves many requests concurrently; a semaphore bounds the number
in flight, which makes the subscription back-pressure the server when full.
FastStream's own ``max_workers`` concurrency measured at under half of this.

Each handler takes the raw message (the executor validates strictly, so that any
bad input gets a contract error reply); the AsyncAPI document still shows each
command's schema through ``WithJsonSchema``.

Ack behaviour: these are core NATS request/reply subscriptions, not JetStream
consumers, so nothing is acked or redelivered; a lost reply is retried by the
client with the same ``command_id``, which the log answers idempotently.
"""

# Annotations here are evaluated eagerly: FastStream reads each handler's signature,
# and the schemas are closure variables a string annotation could not resolve.

import asyncio
import logging
from collections.abc import Callable
from typing import Annotated, Any

from faststream.nats import NatsBroker, NatsMessage
from pydantic import WithJsonSchema

from events import COMMAND_PREFIX
from events.base import Command
from events.commands import COMMANDS

from .replies import encode
from .telemetry import Executor

__all__ = ["CommandDispatcher", "register_command_handlers"]

log = logging.getLogger(__name__)

_PREFIX = COMMAND_PREFIX + "."


async def whole_message(msg: NatsMessage) -> NatsMessage:
    """Decoder handing the handler the message itself: raw body, headers and subject.

    Passing the message as the body also spares an injected ``NatsMessage``
    parameter, which FastStream resolves in a thread pool on every message.
    """
    return msg


class CommandDispatcher:
    """Runs each request in its own task, at most ``max_in_flight`` at once, and replies."""

    def __init__(self, broker: NatsBroker, executor: Callable[[], Executor],
                 max_in_flight: int = 256) -> None:
        self._broker = broker
        self._executor = executor
        self._slots = asyncio.Semaphore(max_in_flight)
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, msg: NatsMessage) -> None:
        """Starts handling one request; waits only while every slot is busy."""
        await self._slots.acquire()
        task = asyncio.create_task(self._handle(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, msg: NatsMessage) -> None:
        try:
            subject = msg.raw_message.subject
            reply = await self._executor().execute(subject.removeprefix(_PREFIX), msg.body,
                                                   msg.headers)
            if msg.reply_to:
                await self._broker.connection.publish(msg.reply_to, encode(reply))
        except Exception:
            log.exception("reply to %s failed", msg.raw_message.subject)
        finally:
            self._slots.release()

    async def drain(self, timeout_s: float = 10.0) -> None:
        """Waits for the requests in flight (on shutdown)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)


def register_command_handlers(
    broker: NatsBroker, executor: Callable[[], Executor], queue: str,
    max_in_flight: int = 256,
) -> CommandDispatcher:
    """Subscribes one handler per command and the catch-all, all in ``queue``."""
    dispatcher = CommandDispatcher(broker, executor, max_in_flight)
    for command_cls in COMMANDS.values():
        _subscribe(broker, dispatcher, queue, f"{_PREFIX}{command_cls.subject}",
                   _inline_definitions(command_cls.model_json_schema()), _describe(command_cls),
                   command_cls.__name__)
    _subscribe(broker, dispatcher, queue, f"{_PREFIX}>", {"type": "object"},
               "Any other subject under runlog.cmd: answered with unknown_command.",
               "UnknownCommand")
    return dispatcher


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


def _subscribe(broker: NatsBroker, dispatcher: CommandDispatcher, queue: str, subject: str,
               schema: dict[str, Any], description: str, name: str) -> None:
    async def handle(msg: Annotated[Any, WithJsonSchema(schema)]) -> None:
        await dispatcher.submit(msg)

    handle.__name__ = handle.__qualname__ = name
    broker.subscriber(subject, queue=queue, decoder=whole_message, no_reply=True,
                      title=subject, description=description)(handle)
