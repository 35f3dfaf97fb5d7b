"""An exclusive lock on the data directory, so two runlog processes never share one."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from .errors import AlreadyRunning

__all__ = ["DataDirLock"]


class DataDirLock:
    """Holds ``<data_dir>/runlog.lock`` with ``flock``; the kernel frees it if the process dies."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "runlog.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        """Takes the lock or raises ``AlreadyRunning`` naming the holder."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise AlreadyRunning(
                f"runlog is already running on {self.path.parent} (pid {holder}); "
                "stop it first or set RUNLOG_DATA_DIR to another directory"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        """Frees the lock, leaving no pid behind (after a crash the next holder overwrites it)."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DataDirLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
