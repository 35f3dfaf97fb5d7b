"""The HTTP side of ``runlog up``: ``/healthz``, ``/readyz``, ``/metrics`` and the dashboard.

Nothing here binds or connects at import time; ``serving_http`` does, in ``serve``.
"""

from .server import HttpEndpoint, is_ready, serving_http

__all__ = ["HttpEndpoint", "is_ready", "serving_http"]
