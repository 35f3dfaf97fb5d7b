"""The read side's ``runlog.sql.*`` subjects, as the AsyncAPI document shows them.

The read side (``projections/service.py``) answers them; these models describe the
request bodies it reads, and ``document_sql_subjects`` puts them on a documentation
broker beside the commands. Replies are ``{"ok": true, "result": ...}`` or
``{"ok": false, "error": {"code", "message"}}``.
"""

# Annotations are evaluated eagerly: FastStream reads the handlers' signatures, and each
# model is a closure variable a string annotation could not resolve.

from typing import Literal

from faststream.nats import NatsBroker
from pydantic import BaseModel, ConfigDict, Field

from projections.query import DEFAULT_LIMIT, DEFAULT_TIMEOUT_S
from projections.service import SQL_QUEUE, SQL_SUBJECT_PREFIX

__all__ = ["ExportRequest", "QueryRequest", "RebuildRequest", "document_sql_subjects"]


class QueryRequest(BaseModel):
    """Run one read-only statement (SELECT, WITH, EXPLAIN, DESCRIBE, SHOW, SUMMARIZE)."""

    model_config = ConfigDict(extra="ignore")

    sql: str = Field(description="the statement")
    limit: int = Field(DEFAULT_LIMIT, description="most rows returned (capped at 100,000)")
    timeout_s: float = Field(DEFAULT_TIMEOUT_S, description="statement timeout (capped at 300)")
    wait_seq: int | None = Field(None, description="first wait until the read models include "
                                                   "this stream sequence (read your writes)")
    wait_timeout_s: float = Field(10.0, description="how long to wait for wait_seq")


class ExportRequest(BaseModel):
    """Write a consistent snapshot of the read models under ``<data dir>/snapshots/``."""

    model_config = ConfigDict(extra="ignore")

    name: str | None = Field(None, description="the snapshot's name (default: the time)")
    format: Literal["parquet", "duckdb"] = Field("parquet", description="Parquet per table, "
                                                 "or one DuckDB file")


class RebuildRequest(BaseModel):
    """Rebuild the live read models from the log while serving, then swap them in."""

    model_config = ConfigDict(extra="ignore")


_REPLIES = {
    "query": "result: columns, types, rows (lists in column order), truncated, position "
             "(the checkpoint the rows reflect).",
    "export": "result: path of the snapshot.",
    "rebuild": "result: path, position and seconds of the rebuild.",
}


def document_sql_subjects(broker: NatsBroker) -> None:
    """Adds one documentation-only subscriber per ``runlog.sql.*`` subject to ``broker``."""
    for action, model in (("query", QueryRequest), ("export", ExportRequest),
                          ("rebuild", RebuildRequest)):
        subject = f"{SQL_SUBJECT_PREFIX}.{action}"
        description = (f"{(model.__doc__ or '').strip()} Answered by the process that holds "
                       f"the read models. Replies ok true with {_REPLIES[action]} Or ok false "
                       "with an error (code, message); nothing is written.")
        _document(broker, subject, model, description)


def _document(broker: NatsBroker, subject: str, model: type[BaseModel], description: str
              ) -> None:
    async def handle(body: model) -> None:  # type: ignore[valid-type]
        """Never run: the documentation broker never connects."""

    handle.__name__ = handle.__qualname__ = model.__name__
    broker.subscriber(subject, queue=SQL_QUEUE, title=subject, description=description)(handle)
