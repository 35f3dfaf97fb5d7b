"""The HTTP endpoint of ``runlog up``: probes, Prometheus metrics and the read-only dashboard.

- ``GET /healthz``: the health report of ``runlog health`` as JSON; 200 when ok or
  degraded, 503 when down.
- ``GET /readyz``: 200 when this runlog can take traffic now (nothing down, projections
  within their lag), else 503; the same JSON.
- ``GET /metrics``: Prometheus text format.
- ``GET /`` and ``/api/...``: the dashboard and the JSON it reads.

Only GET is served, on loopback unless ``RUNLOG_HTTP_ADDR`` names another address.
It runs on the service's event loop; every read goes through ``runlog.sql.query``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from importlib import resources
from typing import TYPE_CHECKING

from aiohttp import web

from services.errors import RunlogError
from services.health import HealthReport, Observation, Status, evaluate, observe
from services.settings import Settings

from .dashboard import add_routes
from .metrics import CONTENT_TYPE, exposition, read_snapshot
from .reads import ReadModels

if TYPE_CHECKING:
    from nats.aio.client import Client
    from prometheus_client import CollectorRegistry

__all__ = ["HttpEndpoint", "is_ready", "serving_http"]

log = logging.getLogger(__name__)

_STATIC = resources.files(__package__) / "static"
_STATIC_FILES = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    # The page loads nothing but its own script and style.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:",
    "X-Content-Type-Options": "nosniff",
}


class HttpEndpoint:
    """One aiohttp server on the service's loop, reading through one NATS connection."""

    def __init__(self, nc: Client, settings: Settings,
                 registry: CollectorRegistry | None = None) -> None:
        from services.telemetry import prometheus_registry

        self._nc = nc
        self._settings = settings
        self._reads = ReadModels(nc)
        self._registry = registry if registry is not None else prometheus_registry()
        self._runner: web.AppRunner | None = None
        self.url: str | None = None
        """``http://host:port`` once started (the real port when 0 was asked for)."""

    def application(self) -> web.Application:
        """The routes, without a server."""
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/", self._index)
        app.router.add_get("/static/{name}", self._static)
        add_routes(app, self._reads)
        return app

    async def start(self, host: str, port: int) -> str:
        """Binds and serves; returns the URL."""
        runner = web.AppRunner(self.application(), access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
        except OSError as error:
            await runner.cleanup()
            raise RunlogError(
                f"cannot serve HTTP on {self._settings.http_addr}: {error.strerror or error} "
                "(set RUNLOG_HTTP_ADDR to another HOST:PORT, or to off)") from None
        self._runner = runner
        bound_host, bound_port = runner.addresses[0][:2]
        self.url = f"http://{_url_host(bound_host)}:{bound_port}"
        return self.url

    async def stop(self) -> None:
        """Stops serving (requests in flight are given a moment to finish)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def health(self) -> tuple[HealthReport, Observation]:
        """The health report, judged now from fresh facts."""
        facts = await observe(self._nc, self._reads.rows, stream=self._settings.stream)
        return evaluate(facts), facts

    async def _healthz(self, request: web.Request) -> web.Response:
        report, _ = await self.health()
        return _report_response(report, ok=report.status is not Status.DOWN)

    async def _readyz(self, request: web.Request) -> web.Response:
        report, _ = await self.health()
        return _report_response(report, ok=is_ready(report))

    async def _metrics(self, request: web.Request) -> web.Response:
        report, facts = await self.health()
        snapshot = await read_snapshot(self._reads, report, facts)
        return web.Response(body=exposition(self._registry, snapshot),
                            headers={"Content-Type": CONTENT_TYPE})

    async def _index(self, request: web.Request) -> web.Response:
        return web.Response(text=(_STATIC / "index.html").read_text(encoding="utf-8"),
                            content_type="text/html", headers=_PAGE_HEADERS)

    async def _static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in _STATIC_FILES:
            raise web.HTTPNotFound()
        return web.Response(text=(_STATIC / name).read_text(encoding="utf-8"),
                            content_type=_STATIC_FILES[name], headers=_PAGE_HEADERS)


def is_ready(report: HealthReport) -> bool:
    """Ready: nothing is down and the projections are within their lag."""
    return all(check.status is not Status.DOWN
               and not (check.name == "projections" and check.status is Status.DEGRADED)
               for check in report.checks)


def _report_response(report: HealthReport, ok: bool) -> web.Response:
    return web.json_response(report.to_dict(), status=200 if ok else 503,
                             headers={"Cache-Control": "no-store"})


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


@contextlib.asynccontextmanager
async def serving_http(nc: Client, settings: Settings) -> AsyncIterator[HttpEndpoint | None]:
    """Serves HTTP on ``RUNLOG_HTTP_ADDR`` until the block exits; None when it is off."""
    bind = settings.http_bind
    if bind is None:
        yield None
        return
    endpoint = HttpEndpoint(nc, settings)
    await endpoint.start(*bind)
    log.info("HTTP endpoint on %s", endpoint.url)
    try:
        yield endpoint
    finally:
        await endpoint.stop()
