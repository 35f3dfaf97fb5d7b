"""Commands of the test gate aggregate."""

from __future__ import annotations

from typing import ClassVar

from events.base import Command, Label, ShortText
from events.ids import Id

__all__ = ["CreateGate", "FailGate", "PassGate", "StartGate", "WaiveGate"]


class _GateCommand(Command):
    aggregate: ClassVar[str] = "gate"
    id_field: ClassVar[str] = "gate_id"


class _ExistingGate(_GateCommand):
    gate_id: Id


class CreateGate(_GateCommand):
    """Create a gate of a run (and maybe of one patch); ``gate_id`` is generated when omitted."""

    subject: ClassVar[str] = "gate.create"
    gate_id: Id | None = None
    run_id: Id
    patch_id: Id | None = None
    name: Label


class StartGate(_ExistingGate):
    """Begin the gate's check."""

    subject: ClassVar[str] = "gate.start"


class PassGate(_ExistingGate):
    """Record that the check passed."""

    subject: ClassVar[str] = "gate.pass"


class FailGate(_ExistingGate):
    """Record that the check failed."""

    subject: ClassVar[str] = "gate.fail"
    reason: ShortText = ""


class WaiveGate(_ExistingGate):
    """Accept a pending, running or failed gate without a pass; ``by`` says who decided."""

    subject: ClassVar[str] = "gate.waive"
    reason: ShortText = ""
    by: Label
