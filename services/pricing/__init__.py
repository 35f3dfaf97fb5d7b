"""The seed price list: published list prices, loaded as ``model.register`` commands."""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["load_price_file", "seed_commands"]


def load_price_file(path: Path | None = None) -> list[dict[str, Any]]:
    """Returns the entries of a price file (the shipped one by default)."""
    text = (path.read_text() if path is not None
            else resources.files(__package__).joinpath("model_prices.json").read_text())
    entries = json.loads(text)["models"]
    if not isinstance(entries, list):
        raise ValueError("a price file holds a 'models' list")
    return entries


def seed_commands(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``model.register`` bodies with command ids derived from their content.

    Loading the same file twice sends the same command ids, and an identical
    price already in effect is a no-op, so seeding is idempotent.
    """
    commands = []
    for entry in entries:
        digest = hashlib.sha256(json.dumps(entry, sort_keys=True).encode()).hexdigest()[:24]
        commands.append({**entry, "command_id": f"seed-price-{digest}"})
    return commands
