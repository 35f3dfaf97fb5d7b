"""Live notifications: direct-get pulls, woken whenever the stream stores a new event."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from eventsourcing.persistence import ListenNotifySubscription, PersistenceError
from nats.aio.msg import Msg
from nats.js import api

if TYPE_CHECKING:
    from .datastore import StreamLog
    from .recorders import JetStreamApplicationRecorder

__all__ = ["JetStreamSubscription"]


class JetStreamSubscription(ListenNotifySubscription["JetStreamApplicationRecorder"]):
    """Iterates notifications; a headers-only ordered consumer says when to pull again."""

    def __init__(
        self,
        recorder: JetStreamApplicationRecorder,
        gt: int | None = None,
        topics: Sequence[str] = (),
    ) -> None:
        # Set before the base class starts its pull thread, which may call stop() at once.
        self._datastore = recorder.datastore
        self._consumer: Any = None
        self._consumer_lock = threading.Lock()
        super().__init__(recorder=recorder, gt=gt, topics=topics)
        try:
            self._keep(self._datastore.run(self._watch(recorder.log)))
        except BaseException:
            self.stop()
            raise
        self._datastore.opened(self)
        # Events stored between the first pull and the consumer's start would otherwise wait.
        self._has_been_notified.set()

    async def _watch(self, log: StreamLog) -> Any:
        # A consumer delivers only what the stream has stored, so a wake-up is never early.
        config = api.ConsumerConfig(deliver_policy=api.DeliverPolicy.NEW, headers_only=True)
        return await log.store.js.subscribe(
            log.subjects.events,
            stream=log.store.stream,
            ordered_consumer=True,
            config=config,
            cb=self._wake,
        )

    async def _wake(self, msg: Msg) -> None:
        self._has_been_notified.set()

    def _keep(self, consumer: Any) -> None:
        with self._consumer_lock:
            if not self._has_been_stopped:
                self._consumer = consumer
                return
        self._unsubscribe(consumer)

    def _unsubscribe(self, consumer: Any) -> None:
        with contextlib.suppress(PersistenceError):
            self._datastore.run(consumer.unsubscribe())

    def stop(self) -> None:
        """Stops the subscription and its consumer."""
        super().stop()
        with self._consumer_lock:
            consumer, self._consumer = self._consumer, None
        if consumer is not None:
            self._unsubscribe(consumer)
        self._datastore.closed(self)
