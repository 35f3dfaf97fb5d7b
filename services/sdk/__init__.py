"""The Python worker SDK: a typed client of every command, and a ``Worker`` that runs tasks.

```python
async with connect() as client:
    await Worker(client, "w1", handler, kinds=["summarise"], capacity=4).run()
```
"""

from events.errors import ErrorCode

from .client import QUERY_SUBJECT, Client, ClientStats, connect
from .errors import (
    BodyNotJson,
    CommandError,
    CommandTimeout,
    LeaseLost,
    QueryError,
    SdkError,
    TaskFailure,
    error_class_of,
)
from .replies import AcquireReply, ClaimedTask, ClaimReply, QueryResult, RecommendReply, Reply
from .retry import RetryPolicy
from .task_context import TaskContext
from .transport import NatsTransport, RequestTimeout, Transport, TransportError
from .worker import Handler, TaskEnd, Worker, WorkerConfig

__all__ = [
    "QUERY_SUBJECT",
    "AcquireReply",
    "BodyNotJson",
    "ClaimReply",
    "ClaimedTask",
    "Client",
    "ClientStats",
    "CommandError",
    "CommandTimeout",
    "ErrorCode",
    "Handler",
    "LeaseLost",
    "NatsTransport",
    "QueryError",
    "QueryResult",
    "RecommendReply",
    "Reply",
    "RequestTimeout",
    "RetryPolicy",
    "SdkError",
    "TaskContext",
    "TaskEnd",
    "TaskFailure",
    "Transport",
    "TransportError",
    "Worker",
    "WorkerConfig",
    "connect",
    "error_class_of",
]
