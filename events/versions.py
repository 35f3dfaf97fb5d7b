"""Schema versions and pure upcasters.

A stored event is never rewritten. When an event type's shape changes, its
``CURRENT_VERSIONS`` entry goes up and an upcaster from the old version is
registered; every reader upcasts on load, so old and new events read the same.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["Upcaster", "UpcasterRegistry", "registry"]

Payload = dict[str, Any]
Upcaster = Callable[[Payload], Payload]


class UpcasterRegistry:
    """Holds the current version of each event type and the upcasters to reach it."""

    def __init__(self) -> None:
        self._current: dict[str, int] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}

    def current_version(self, event_type: str) -> int:
        """Returns the version new events of this type are written with."""
        return self._current.get(event_type, 1)

    def register(self, event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Registers a pure function turning ``from_version`` data into the next version."""

        def decorate(upcaster: Upcaster) -> Upcaster:
            key = (event_type, from_version)
            if key in self._upcasters:
                raise ValueError(f"upcaster {event_type} v{from_version} already registered")
            self._upcasters[key] = upcaster
            self._current[event_type] = max(self.current_version(event_type), from_version + 1)
            return upcaster

        return decorate

    def upcast(self, event_type: str, version: int, data: Payload) -> tuple[int, Payload]:
        """Brings ``data`` written at ``version`` up to the current version."""
        target = self.current_version(event_type)
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
