"""What claims and commits need to know of the whole log beyond tasks: limits, gates of patches.

Both are folded from every event the follower passes (and this replica's own writes,
at once): each run's ``max_concurrency``, each kind's ``max_running``, and which gates
each patch has. A limit is applied at the sequence it was written: a later event of
the same run or queue always wins, whichever way it arrived first.
"""

from __future__ import annotations

from events.codec import StoredEvent
from services.domain.claims import Limits

__all__ = ["ClaimLimits", "GatesOfPatches"]


class ClaimLimits:
    """The per-run and per-kind concurrency limits in force, as of this replica's log."""

    def __init__(self, max_running: int | None = None) -> None:
        self.max_running = max_running
        self._by_run: dict[str, int] = {}
        self._by_kind: dict[str, int] = {}
        self._seen: dict[tuple[str, str], int] = {}

    def limits(self) -> Limits:
        """Every limit in force now."""
        return Limits(self.max_running, dict(self._by_kind), dict(self._by_run))

    def set(self, scope: str, key: str, limit: int | None, seq: int) -> None:
        """Notes the limit of a run (scope ``run``) or kind (``kind``) written at ``seq``."""
        if self._seen.get((scope, key), 0) >= seq:
            return
        self._seen[(scope, key)] = seq
        table = self._by_run if scope == "run" else self._by_kind
        if limit is None:
            table.pop(key, None)
        else:
            table[key] = limit

    def observe(self, stored: StoredEvent) -> None:
        """Takes a limit from a run's or a queue's event."""
        if stored.type in ("RunCreated", "RunConfigured"):
            self.set("run", stored.aggregate_id, stored.data.get("max_concurrency"), stored.seq)
        elif stored.type == "QueueConfigured":
            self.set("kind", str(stored.data["kind"]), stored.data.get("max_running"),
                     stored.seq)


class GatesOfPatches:
    """Which test gates each patch has."""

    def __init__(self) -> None:
        self._gates: dict[str, set[str]] = {}

    def add(self, patch_id: str, gate_id: str) -> None:
        """Notes a gate of a patch."""
        self._gates.setdefault(patch_id, set()).add(gate_id)

    def of(self, patch_id: str) -> list[str]:
        """The patch's gates."""
        return sorted(self._gates.get(patch_id, ()))

    def observe(self, stored: StoredEvent) -> None:
        """Takes a gate's patch from its creation."""
        patch_id = stored.data.get("patch_id")
        if stored.type == "GateCreated" and isinstance(patch_id, str):
            self.add(patch_id, stored.aggregate_id)
