"""The seed price list: published list prices, loaded as ``model.register`` commands."""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from events.commands.model import RegisterModel
from services.errors import RunlogError

__all__ = ["PriceFileError", "load_price_file", "seed_commands"]


class PriceFileError(RunlogError):
    """A price file is missing, not JSON, or holds an entry ``model.register`` would refuse."""


def load_price_file(path: Path | None = None) -> list[dict[str, Any]]:
    """Returns the checked entries of a price file (the shipped one by default)."""
    name = str(path) if path is not None else "the shipped price list"
    try:
        text = (path.read_text(encoding="utf-8") if path is not None
                else resources.files(__package__).joinpath("model_prices.json").read_text())
    except (OSError, UnicodeDecodeError) as error:
        raise PriceFileError(f"cannot read {name}: "
                             f"{getattr(error, 'strerror', None) or error}") from None
    try:
        document = json.loads(text)
    except ValueError as error:
        raise PriceFileError(f"{name} is not JSON: {error}") from None
    entries = document.get("models") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise PriceFileError(f"{name} must be a JSON object with a \"models\" list, "
                             'e.g. {"models": [{"model": ..., "provider": ..., '
                             '"input_usd_per_mtok": ..., "output_usd_per_mtok": ...}]}')
    for index, entry in enumerate(entries):
        _check_entry(name, index, entry)
    return entries


def _check_entry(name: str, index: int, entry: Any) -> None:
    where = f"{name}: models[{index}]"
    if not isinstance(entry, dict):
        raise PriceFileError(f"{where} is not an object")
    try:
        RegisterModel.model_validate_json(json.dumps(entry))
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "entry"
        raise PriceFileError(f"{where} ({entry.get('model', '?')}): {field}: {first['msg']} "
                             f"({error.error_count()} problem(s) in all)") from None


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
