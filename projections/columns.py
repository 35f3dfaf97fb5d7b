"""Column types of the read models: DuckDB type, Arrow type and a strict converter each.

Converters run while an event is folded, so a field of the wrong type is pinned on
that event (and lands in ``projection_errors``) instead of failing the whole batch
when the Arrow table is built.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any

import pyarrow as pa
from pydantic_core import to_json

from events.money import USD_PLACES, parse_usd

__all__ = ["Col", "ColType", "arrow_schema", "ddl_columns"]


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value


def _float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    return float(value)


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected a boolean, got {type(value).__name__}")
    return value


def _time(value: Any) -> str:
    # Times stay ISO text in Python and are cast by DuckDB on insert (vectorised, no GIL).
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"expected an ISO 8601 time, got {type(value).__name__}")


def _json(value: Any) -> str:
    # Serialised in Rust (several times faster than json.dumps in a replay); only a text
    # that may hold NaN or Infinity goes through json.dumps, which refuses them.
    text = to_json(value, inf_nan_mode="constants")
    if b"NaN" in text or b"Infinity" in text:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    return text.decode()


def _text_list(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    return [_text(item) for item in value]


class ColType(Enum):
    """A read-model column type."""

    TEXT = ("VARCHAR", pa.string(), _text)
    """A string."""
    INT = ("INTEGER", pa.int32(), _int)
    """A small integer (priorities, attempts, versions)."""
    BIGINT = ("BIGINT", pa.int64(), _int)
    """A sequence, a token count."""
    DOUBLE = ("DOUBLE", pa.float64(), _float)
    """Seconds, ratios."""
    MONEY = (f"DECIMAL(38, {USD_PLACES})", pa.decimal128(38, USD_PLACES), parse_usd)
    """US dollars, exact (never a float: sums of many small costs do not drift)."""
    BOOL = ("BOOLEAN", pa.bool_(), _bool)
    """A flag."""
    TIME = ("TIMESTAMPTZ", pa.string(), _time)
    """A UTC instant."""
    JSON = ("JSON", pa.string(), _json)
    """A JSON document (labels, payloads, results)."""
    TEXT_LIST = ("VARCHAR[]", pa.list_(pa.string()), _text_list)
    """A list of strings (kinds, files, ids)."""
    DATE = ("DATE", pa.date32(), lambda value: value)
    """A calendar day (views only)."""
    COUNTS = ("MAP(VARCHAR, BIGINT)", pa.map_(pa.string(), pa.int64()), lambda value: value)
    """Counts by name, maintained in SQL."""

    def __init__(self, sql: str, arrow: pa.DataType, convert: Callable[[Any], Any]) -> None:
        self.sql = sql
        self.arrow = arrow
        self.convert = convert


@dataclass(frozen=True, slots=True)
class Col:
    """One column of a read-model table."""

    name: str
    type: ColType
    default: Any = None
    doc: str = ""
    derived: bool = False
    """Maintained in SQL from other tables; folds neither read nor write it."""

    @property
    def ident(self) -> str:
        """The quoted column name."""
        return f'"{self.name}"'

    def sql_in(self, source: str = "") -> str:
        """The expression writing this column from a batch column of the same name (of
        the relation ``source``, when given)."""
        column = f"{source}.{self.ident}" if source else self.ident
        if self.type in (ColType.TIME, ColType.JSON):
            return f"CAST({column} AS {self.type.sql})"
        return column

    def sql_out(self) -> str:
        """The expression reading this column back into a fold."""
        if self.type is ColType.TIME:
            return f"CAST({self.ident} AS VARCHAR) AS {self.ident}"
        return self.ident


def ddl_columns(columns: tuple[Col, ...], key: tuple[str, ...] = ()) -> str:
    """Returns the column list of a ``CREATE TABLE``."""
    lines = [f"{c.ident} {c.type.sql}{_constraint(c, key)}" for c in columns]
    if key:
        lines.append(f"PRIMARY KEY ({', '.join(key)})")
    return ",\n    ".join(lines)


def _constraint(col: Col, key: tuple[str, ...]) -> str:
    if col.name in key:
        return " NOT NULL"
    default = initial_value(col)
    return "" if default is None else f" DEFAULT {default}"


def initial_value(col: Col) -> Any:
    """What a new row holds in a derived column before SQL first maintains it (its DDL
    default: a number, or null)."""
    if col.derived and isinstance(col.default, (int, float, Decimal)):
        return col.default
    return None


def arrow_schema(columns: tuple[Col, ...]) -> pa.Schema:
    """Returns the Arrow schema rows of these columns are written with."""
    return pa.schema([pa.field(c.name, c.type.arrow) for c in columns])
