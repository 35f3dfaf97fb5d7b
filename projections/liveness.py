"""The read side's sign of life, kept in the read-model file it writes.

A running ``runlog up`` rewrites one ``service_liveness`` row every few seconds and
marks it stopped when it stops. The ``health`` view compares that row with the clock,
so whoever reads the file (``runlog sql`` on a copy, read-only, with the service
gone) learns that the service is down instead of reading old lag as "ok". A
``kill -9`` leaves the row running, but its beat stops: after ``STALE_AFTER_BEATS``
missed beats the view says down.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime
from typing import TYPE_CHECKING

from .columns import Col, ColType
from .models import TableDoc

if TYPE_CHECKING:
    from .database import ReadModelDb

__all__ = ["BEAT_INTERVAL_S", "LIVENESS_TABLE", "STALE_AFTER_BEATS", "beat", "mark_stopped"]

BEAT_INTERVAL_S = 5.0
STALE_AFTER_BEATS = 3
_ROLE = "read_side"

LIVENESS_TABLE = TableDoc(
    "service_liveness", "The sign of life of the `runlog up` that writes this file: "
    f"refreshed every {BEAT_INTERVAL_S:g} s while it runs, marked stopped when it stops.", (
        Col("role", ColType.TEXT, doc="read_side: the process projecting into this file"),
        Col("host", ColType.TEXT, doc="its host name"),
        Col("pid", ColType.BIGINT, doc="its process id"),
        Col("started_at", ColType.TIME, doc="when it started"),
        Col("beat_at", ColType.TIME, doc="its latest beat"),
        Col("beat_interval_s", ColType.DOUBLE, doc="seconds between beats"),
        Col("stopped_at", ColType.TIME, doc="when it stopped cleanly (null while running)"),
    ), ("role",))


def beat(db: ReadModelDb, started_at: datetime, interval_s: float = BEAT_INTERVAL_S) -> None:
    """Records that this process is alive now (on its own cursor, in its own transaction)."""
    cursor = db.cursor()
    try:
        cursor.execute(
            "INSERT OR REPLACE INTO service_liveness VALUES (?, ?, ?, ?, now(), ?, NULL)",
            [_ROLE, socket.gethostname(), os.getpid(), started_at, interval_s])
    finally:
        cursor.close()


def mark_stopped(db: ReadModelDb) -> None:
    """Records a clean stop, so the ``health`` view says down at once."""
    cursor = db.cursor()
    try:
        cursor.execute("UPDATE service_liveness SET stopped_at = now() WHERE role = ? AND pid = ?",
                       [_ROLE, os.getpid()])
    finally:
        cursor.close()
