"""The pure domain: one state machine per aggregate, transition tables as data, no I/O."""

from .context import Context, Price
from .machine import DomainError, InvalidHistory, TransitionTable
from .registry import MACHINES, Machine

__all__ = ["MACHINES", "Context", "DomainError", "InvalidHistory", "Machine", "Price",
           "TransitionTable"]
