"""A private asyncio event loop in a daemon thread, so synchronous callers can await NATS."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["EventLoopThread", "LoopClosed"]

T = TypeVar("T")


class LoopClosed(RuntimeError):
    """The event loop thread has been stopped."""


class EventLoopThread:
    """Runs coroutines submitted from other threads on one event loop of its own."""

    def __init__(self, name: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._lock = threading.Lock()
        self._stopped = False
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    @property
    def is_stopped(self) -> bool:
        """Whether ``stop`` has been called."""
        return self._stopped

    @property
    def is_current(self) -> bool:
        """Whether the calling code runs on the loop thread itself."""
        return threading.current_thread() is self._thread

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
        finally:
            self._cancel_leftovers()
            self._loop.close()

    def _cancel_leftovers(self) -> None:
        # Callers still waiting on a future get CancelledError instead of hanging.
        tasks = asyncio.all_tasks(self._loop)
        for task in tasks:
            task.cancel()
        if tasks:
            self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        self._loop.run_until_complete(self._loop.shutdown_asyncgens())

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float | None = None) -> T:
        """Runs ``coro`` on the loop and waits for its result (TimeoutError after ``timeout_s``)."""
        if self.is_current:
            coro.close()
            raise RuntimeError("a coroutine on the loop thread cannot wait for the loop")
        with self._lock:
            # Checked under the lock so no coroutine is submitted to a loop that will never run it.
            if self._stopped:
                coro.close()
                raise LoopClosed("the event loop thread is stopped")
            future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout_s)
        except TimeoutError:
            future.cancel()
            raise

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stops the loop, cancels what is left on it and joins the thread; safe to repeat."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            self._loop.call_soon_threadsafe(self._loop.stop)
        if not self.is_current:
            self._thread.join(timeout_s)
