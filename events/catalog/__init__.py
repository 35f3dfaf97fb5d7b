"""Every domain event type, by the ``type`` name it is stored with."""

from __future__ import annotations

from events.base import DomainEvent

from . import (
    breaker,
    budget,
    cache,
    gate,
    model,
    patch,
    queue,
    reservation,
    routing,
    run,
    task,
    worker,
    workstream,
)

__all__ = ["EVENT_TYPES", "event_class"]

_MODULES = (run, workstream, task, worker, breaker, patch, gate, model, budget, queue, routing,
            cache, reservation)

EVENT_TYPES: dict[str, type[DomainEvent]] = {
    cls.type_name(): cls
    for module in _MODULES
    for name in module.__all__
    if isinstance(cls := getattr(module, name), type) and issubclass(cls, DomainEvent)
}


def event_class(type_name: str) -> type[DomainEvent]:
    """Returns the class of a stored event type, or raises ``KeyError``."""
    return EVENT_TYPES[type_name]
