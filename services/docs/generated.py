"""Generated documents kept in the repository: write them, or check they are current."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["write_or_check"]


def write_or_check(path: Path, text: str, regenerate: str, args: Sequence[str]) -> int:
    """Writes ``text`` to ``path``; with ``--check`` in ``args``, exits 1 when it differs."""
    current = path.read_text(encoding="utf-8") if path.exists() else None
    if "--check" in args:
        if current != text:
            print(f"{path} is stale: run {regenerate}", file=sys.stderr)
            return 1
        return 0
    if current != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return 0
