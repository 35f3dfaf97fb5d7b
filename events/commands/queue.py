"""Commands of the Queue aggregate: settings of one work kind's queue, over all runs."""

from __future__ import annotations

from typing import ClassVar

from events.base import Command, Kind, Limit
from events.ids import escaped_id

__all__ = ["ConfigureQueue"]


class ConfigureQueue(Command):
    """Set how many tasks of ``kind`` may be leased at once, over all runs (null: no limit)."""

    aggregate: ClassVar[str] = "queue"
    id_field: ClassVar[str] = "kind"
    subject: ClassVar[str] = "queue.configure"

    kind: Kind
    max_running: Limit | None = None

    def target_id(self) -> str:
        """The queue's aggregate id: its kind, escaped to fit a subject."""
        return escaped_id(self.kind)
