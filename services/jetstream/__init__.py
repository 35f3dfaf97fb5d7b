"""An ``eventsourcing`` persistence module that keeps an application's records on NATS JetStream.

Select it with ``PERSISTENCE_MODULE=services.jetstream``; the library finds
:class:`JetStreamFactory`, the one infrastructure factory defined here.

Environment (each key may be prefixed with the upper-cased application name,
e.g. ``BANK_RUNLOG_NATS_URL``, which wins over the plain key):

``RUNLOG_NATS_URL``
    Server URL, or several separated by commas (required).
``RUNLOG_ES_STREAM``
    Base stream name; default ``ES_<APPLICATION NAME>`` (upper case, other
    characters as ``_``), or ``ES`` for an unnamed application.
``RUNLOG_ES_SUBJECT_PREFIX``
    Subject prefix; default the base stream name in lower case.
``RUNLOG_REPLICAS``, ``RUNLOG_DUPLICATE_WINDOW_S``
    Stream replicas (default 1) and ``Nats-Msg-Id`` duplicate window (default 120 s).
``RUNLOG_ES_TIMEOUT_S``
    Deadline of each NATS request and of the first connect (default 5 s).
``CREATE_TABLE``
    The library's switch; when true (default) recorders create or update their stream.

Streams and subjects, with base stream ``S`` and prefix ``p``:

- events (application and process recorders): stream ``S``, subjects ``p.events.>``;
- snapshots: stream ``S_SNAPSHOTS``, subjects ``p.snapshots.>``;
- tracking (tracking recorder): stream ``S_TRACKING``, subjects ``p.tracking.>``.

In each stream one originator is one subject, ``<root>.e.<id>``: a UUID as its 32
hex digits, a string id as ``s-`` and the id with every character outside
``[A-Za-z0-9-]`` written ``_xx`` per UTF-8 byte. A message's body is the event's
state; headers ``Es-Version`` and ``Es-Topic`` (``Es-Topic-B64`` for a topic that
is not plain printable ASCII) carry the rest. The notification id is the stream
sequence, so snapshots, on their own stream, never take one. Tracking records
are empty messages on ``<root>.t.<application name>`` with ``Es-Notification-Id``;
a process recorder writes them in the same atomic batch as the events they
caused, which leaves gaps in the notification ids.

An insert is one JetStream atomic batch (at most 1000 messages). Each subject's
first message carries ``Nats-Expected-Last-Subject-Sequence``, the sequence of
the originator's last event read by direct get just before; an insert whose
version is not after the stored last version, or that loses a race and no longer
fits, raises ``IntegrityError`` and writes nothing. Versions of one originator
must therefore ascend, as the library always writes them.

The library is synchronous: each factory runs one NATS connection on a private
event loop in a daemon thread, and ``close()`` (``Application.close()``) stops
subscriptions, closes the connection and joins the thread.
"""

from .factory import JetStreamFactory
from .recorders import (
    JetStreamAggregateRecorder,
    JetStreamApplicationRecorder,
    JetStreamProcessRecorder,
    JetStreamTrackingRecorder,
)
from .subscription import JetStreamSubscription

__all__ = [
    "JetStreamAggregateRecorder",
    "JetStreamApplicationRecorder",
    "JetStreamFactory",
    "JetStreamProcessRecorder",
    "JetStreamSubscription",
    "JetStreamTrackingRecorder",
]
