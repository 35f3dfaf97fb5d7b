"""When a run ends, its unfinished tasks are cancelled, so no worker spends money on them.

The policy follows the run events through a durable JetStream consumer: the
server keeps its position across restarts, and replicas share it (each event is
handled by one of them). Each cancel's command id is derived from the task and
the sequence of the run's ending event, so a redelivery writes nothing new.

The open tasks come from the claim index, which follows the task events: a task
submitted in the same instant the run ended may be missed (its submit was
decided while the run was still running); it then stays claimable until it
ends on its own.
"""

from __future__ import annotations

import json
import logging

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import api

from services.command_service import CommandExecutor
from services.store import JetStreamEventStore

from .ids import policy_command_id

__all__ = ["RUN_ENDINGS", "RunEndPolicy"]

log = logging.getLogger(__name__)

RUN_ENDINGS = frozenset({"RunSucceeded", "RunFailed", "RunCancelled"})


class RunEndPolicy:
    """Cancels the open tasks of every run that ends."""

    durable = "runlog-policy-run-end"

    def __init__(self, executor: CommandExecutor, store: JetStreamEventStore) -> None:
        self._executor = executor
        self._store = store

    async def run(self) -> None:
        """Consumes run events until cancelled."""
        subscription = await self._store.js.pull_subscribe(
            f"{self._store.subject_prefix}.run.*", durable=self.durable,
            stream=self._store.stream,
            config=api.ConsumerConfig(ack_policy=api.AckPolicy.EXPLICIT, ack_wait=30,
                                      max_ack_pending=1000))
        while True:
            try:
                messages = await subscription.fetch(100, timeout=1.0)
            except nats.errors.TimeoutError:
                continue
            for msg in messages:
                await self._handle(msg)

    async def _handle(self, msg: Msg) -> None:
        event = json.loads(msg.data)
        if event.get("type") in RUN_ENDINGS:
            await self._executor.task_index.caught_up.wait()
            await self.cancel_open_tasks(str(event["aggregate_id"]), msg.metadata.sequence.stream,
                                         str(event["type"]))
        # Acked only once handled: a crash before this redelivers the event.
        await msg.ack()

    async def cancel_open_tasks(self, run_id: str, seq: int, ending: str) -> int:
        """Cancels every open task of ``run_id``; returns how many it cancelled."""
        cancelled = 0
        for task_id in self._executor.task_index.open_tasks(run_id):
            body = {"task_id": task_id, "reason": f"run {run_id} ended ({ending})",
                    "command_id": policy_command_id("run-end", seq, task_id)}
            reply = await self._executor.execute("task.cancel", json.dumps(body).encode())
            cancelled += bool(reply["ok"] and reply["events"])
            if not reply["ok"] and reply["error"]["code"] != "invalid_transition":
                log.warning("cancelling %s after %s: %s", task_id, ending,
                            reply["error"]["message"])
        return cancelled
