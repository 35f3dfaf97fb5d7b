"""A plain progress bar on stderr for replays (no dependency; one line per 10% when not a TTY)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["StderrProgress"]


class StderrProgress:
    """Callable as ``progress(position, target)`` after each batch."""

    def __init__(self, label: str = "replay", stream: TextIO | None = None, width: int = 30,
                 start: int = 0) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self.started = time.monotonic()
        self.start = start
        self._last_decile = -1
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def __call__(self, position: int, target: int) -> None:
        """Shows how far the replay is."""
        done = min(position / target, 1.0) if target else 1.0
        line = self._line(position, target, done)
        if self._tty:
            self.stream.write("\r" + line)
        elif int(done * 10) > self._last_decile:
            self._last_decile = int(done * 10)
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Ends the bar's line."""
        if self._tty:
            self.stream.write("\n")
            self.stream.flush()

    def _line(self, position: int, target: int, done: float) -> str:
        filled = int(done * self.width)
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = (position - self.start) / elapsed
        return (f"{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {done:4.0%} "
                f"seq {position}/{target}  {rate:,.0f} events/s")
