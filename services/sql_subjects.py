"""The read side's ``runlog.sql.*`` subjects, as the AsyncAPI document shows them.

The read side (``projections/service.py``) answers them and parses each request body
with the models of ``projections.sql_messages``; ``document_sql_subjects`` puts those
same models on a documentation broker beside the commands, and ``SQL_REPLIES`` names
the reply models of each subject, which the document lists as the operation's reply.
"""

# Annotations are evaluated eagerly: FastStream reads the handlers' signatures, and each
# model is a closure variable a string annotation could not resolve.

from faststream.nats import NatsBroker
from pydantic import BaseModel

from projections.service import SQL_QUEUE, SQL_SUBJECT_PREFIX
from projections.sql_messages import (
    ErrorReply,
    ExportReply,
    ExportRequest,
    QueryReply,
    QueryRequest,
    RebuildReply,
    RebuildRequest,
    StreamEndReply,
    StreamPart,
)

__all__ = ["SQL_REPLIES", "SQL_REQUESTS", "document_sql_subjects"]

SQL_REQUESTS: dict[str, type[BaseModel]] = {
    f"{SQL_SUBJECT_PREFIX}.query": QueryRequest,
    f"{SQL_SUBJECT_PREFIX}.export": ExportRequest,
    f"{SQL_SUBJECT_PREFIX}.rebuild": RebuildRequest,
}
"""Every subject the read side answers, with the model its request body is read with."""

SQL_REPLIES: dict[str, tuple[type[BaseModel], ...]] = {
    f"{SQL_SUBJECT_PREFIX}.query": (QueryReply, StreamPart, StreamEndReply, ErrorReply),
    f"{SQL_SUBJECT_PREFIX}.export": (ExportReply, ErrorReply),
    f"{SQL_SUBJECT_PREFIX}.rebuild": (RebuildReply, ErrorReply),
}
"""What each subject may send back to the requester's inbox."""

_REPLIES = {
    "query": "QueryReply: columns, types, rows (lists in column order), truncated, position "
             "(the checkpoint the rows reflect). With stream true: StreamPart messages, each "
             "sent with a reply subject the requester publishes an empty acknowledgement to "
             "before the next part is sent, then a StreamEndReply.",
    "export": "ExportReply: the path of the snapshot.",
    "rebuild": "RebuildReply: path, position and seconds of the rebuild. For an operator "
               "identity only where deploy/nats/accounts.conf is used.",
}


def document_sql_subjects(broker: NatsBroker) -> None:
    """Adds one documentation-only subscriber per ``runlog.sql.*`` subject to ``broker``."""
    for subject, model in SQL_REQUESTS.items():
        action = subject.rpartition(".")[2]
        description = (f"{(model.__doc__ or '').strip()} Answered by the process that holds "
                       f"the read models (queue group {SQL_QUEUE}). Replies ok true with "
                       f"{_REPLIES[action]} Or ok false with an ErrorReply (code, message); "
                       "nothing is written.")
        _document(broker, subject, model, description)


def _document(broker: NatsBroker, subject: str, model: type[BaseModel], description: str
              ) -> None:
    async def handle(body: model) -> None:  # type: ignore[valid-type]
        """Never run: the documentation broker never connects."""

    handle.__name__ = handle.__qualname__ = model.__name__
    broker.subscriber(subject, queue=SQL_QUEUE, title=subject, description=description)(handle)
