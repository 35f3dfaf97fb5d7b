"""Deterministic command ids for policies, always within the id rule's 128 characters."""

from __future__ import annotations

import hashlib

__all__ = ["policy_command_id"]


def policy_command_id(policy: str, *trigger: object) -> str:
    """``<policy>-<digest of the trigger>``: the same trigger always yields the same id.

    A digest rather than the parts themselves: aggregate ids alone may be 128 characters.
    """
    digest = hashlib.sha256("\0".join(map(str, trigger)).encode()).hexdigest()[:40]
    return f"{policy}-{digest}"
