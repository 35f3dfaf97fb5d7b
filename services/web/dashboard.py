"""The dashboard's JSON: one read per page, each a set of named row sections.

Every page answers ``{"sections": {name: [row, ...]}, "read_at": ISO time}``; a read
side that does not answer gives 503 and a bad id or filter 400, each with
``{"error": {"code", "message"}}`` like every other runlog reply.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from aiohttp import web

from . import queries
from .reads import ReadModels, Rows

__all__ = ["PAGES", "add_routes"]

PAGES: dict[str, dict[str, str]] = {
    "overview": {"runs_by_state": queries.RUNS_BY_STATE, "tasks_by_state": queries.TASKS_BY_STATE,
                 "workers_by_state": queries.WORKERS_BY_STATE,
                 "recent_transitions": queries.RECENT_TRANSITIONS},
    "runs": {"runs": queries.RUNS},
    "workers": {"workers": queries.WORKERS},
    "breakers": {"breakers": queries.BREAKERS},
    "budgets": {"budgets": queries.BUDGETS, "run_budgets": queries.RUN_BUDGETS},
    "cost": {"cost_by_day": queries.COST_BY_DAY, "cost_by_model": queries.COST_BY_MODEL},
}
"""The fixed pages and the statements behind each."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(status: int, code: str, message: str) -> web.Response:
    """A runlog error reply with an HTTP status."""
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


async def _read(reads: ReadModels, statements: dict[str, str]) -> dict[str, Rows] | web.Response:
    """The sections, or the 503 reply saying why they could not be read."""
    try:
        return await reads.sections(statements)
    except Exception as error:  # the page says why, the server keeps serving
        return error_response(503, "unavailable", f"the read models do not answer: {error}")


async def _sections(reads: ReadModels, statements: dict[str, str]) -> web.Response:
    sections = await _read(reads, statements)
    return sections if isinstance(sections, web.Response) else _page(sections)


def _page(sections: dict[str, Rows]) -> web.Response:
    body = {"sections": sections, "read_at": datetime.now(UTC).isoformat()}
    return web.json_response(body, headers={"Cache-Control": "no-store"})


def _fixed_page(reads: ReadModels, statements: dict[str, str]) -> Handler:
    async def handle(request: web.Request) -> web.Response:
        return await _sections(reads, statements)

    return handle


def _tasks_page(reads: ReadModels) -> Handler:
    async def handle(request: web.Request) -> web.Response:
        try:
            statement = queries.tasks_query(request.query.get("state") or None)
        except ValueError as error:
            return error_response(400, "validation_failed", str(error))
        return await _sections(reads, {"tasks": statement})

    return handle


def _run_page(reads: ReadModels) -> Handler:
    async def handle(request: web.Request) -> web.Response:
        run_id = request.match_info["run_id"]
        try:
            statements = queries.run_queries(run_id)
        except ValueError as error:
            return error_response(400, "validation_failed", str(error))
        sections = await _read(reads, statements)
        if isinstance(sections, web.Response):
            return sections
        if not sections["run"]:
            return error_response(404, "not_found", f"no run {run_id}")
        return _page(sections)

    return handle


def add_routes(app: web.Application, reads: ReadModels) -> None:
    """Serves ``/api/<page>`` for every page, ``/api/tasks`` and ``/api/runs/{run_id}``."""
    for name, statements in PAGES.items():
        app.router.add_get(f"/api/{name}", _fixed_page(reads, statements))
    app.router.add_get("/api/tasks", _tasks_page(reads))
    app.router.add_get("/api/runs/{run_id}", _run_page(reads))
