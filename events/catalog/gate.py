"""Events of the test gate aggregate: one check a run or a patch must pass."""

from __future__ import annotations

from typing import ClassVar

from events.base import DomainEvent, Label, ShortText
from events.ids import Id

__all__ = ["GateCreated", "GateFailed", "GatePassed", "GateStarted", "GateWaived"]


class _GateEvent(DomainEvent):
    aggregate: ClassVar[str] = "gate"

    gate_id: Id


class GateCreated(_GateEvent):
    """A gate was created in ``pending`` for a run (and maybe one of its patches)."""

    run_id: Id
    patch_id: Id | None = None
    name: Label


class GateStarted(_GateEvent):
    """The gate's check began."""


class GatePassed(_GateEvent):
    """The check passed."""


class GateFailed(_GateEvent):
    """The check failed."""

    reason: ShortText = ""


class GateWaived(_GateEvent):
    """Someone (``by``) accepted the gate without a pass."""

    reason: ShortText = ""
    by: Label
