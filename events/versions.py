"""Pure upcasters: how an older stored shape of an event type becomes the next one.

A stored event is never rewritten. When an event type's shape changes, its class's
``schema_version`` goes up (the one source of the version it is written with) and an
upcaster from the old version is registered here; every reader decodes through
``events.codec.EventCodec``, which upcasts on load, so old and new events read the same.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["Upcaster", "UpcasterRegistry", "registry"]

Payload = dict[str, Any]
Upcaster = Callable[[Payload], Payload]


class UpcasterRegistry:
    """Holds, per event type, the upcaster from each old version to the next."""

    def __init__(self) -> None:
        self._upcasters: dict[tuple[str, int], Upcaster] = {}

    def register(self, event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Registers a pure function turning ``from_version`` data into the next version."""

        def decorate(upcaster: Upcaster) -> Upcaster:
            key = (event_type, from_version)
            if key in self._upcasters:
                raise ValueError(f"upcaster {event_type} v{from_version} already registered")
            self._upcasters[key] = upcaster
            return upcaster

        return decorate

    def copy(self) -> UpcasterRegistry:
        """A registry holding these upcasters, to which more may be added."""
        copied = UpcasterRegistry()
        copied._upcasters = dict(self._upcasters)
        return copied

    def require_chain(self, event_type: str, target: int) -> None:
        """Raises unless an upcaster leads from every version below ``target`` to it."""
        missing = [v for v in range(1, target) if (event_type, v) not in self._upcasters]
        if missing:
            raise ValueError(f"{event_type} is v{target} but has no upcaster from v{missing[0]}")

    def upcast(self, event_type: str, version: int, target: int, data: Payload
               ) -> tuple[int, Payload]:
        """Brings ``data`` written at ``version`` up to ``target``."""
        if version > target:
            raise ValueError(f"{event_type} v{version} is newer than this code (v{target})")
        while version < target:
            step = self._upcasters.get((event_type, version))
            if step is None:
                raise ValueError(f"no upcaster for {event_type} v{version}")
            data = step(dict(data))
            version += 1
        return version, data


registry = UpcasterRegistry()
"""The process-wide registry the event catalog registers its upcasters in."""
