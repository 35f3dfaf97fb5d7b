"""How a client verb finds the running runlog's NATS."""

from __future__ import annotations

import json

from services.errors import RunlogError
from services.settings import Settings

__all__ = ["running_nats_url", "running_nats_url_or_none"]


def running_nats_url(settings: Settings) -> str:
    """``RUNLOG_NATS_URL``, or the URL the local `runlog up` wrote into its data directory."""
    if settings.nats_url:
        return settings.nats_url
    instance = settings.data_dir / "instance.json"
    try:
        return str(json.loads(instance.read_text())["nats_url"])
    except (OSError, ValueError, KeyError):
        raise RunlogError(
            f"runlog is not running on {settings.data_dir} (start `runlog up`, "
            "or set RUNLOG_NATS_URL)") from None


def running_nats_url_or_none(settings: Settings) -> str | None:
    """Like ``running_nats_url``, but None when no runlog is running here."""
    try:
        return running_nats_url(settings)
    except RunlogError:
        return None
