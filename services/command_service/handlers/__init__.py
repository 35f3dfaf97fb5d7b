"""One typed handler per command class; ``ROUTES`` covers every command (checked at import)."""

from __future__ import annotations

from ..routes import AnyRoute, route_table
from . import money, reservations, runs, tasks, work_products, workers, workstreams

__all__ = ["ROUTES", "ROUTES_BY_CLASS"]

ROUTES: dict[str, AnyRoute] = route_table(
    (*runs.ROUTES, *tasks.ROUTES, *workers.ROUTES, *workstreams.ROUTES,
     *work_products.ROUTES, *money.ROUTES, *reservations.ROUTES))
"""Every route by the subject it is served on, after ``runlog.cmd.``."""

ROUTES_BY_CLASS: dict[type, AnyRoute] = {route.command_class: route for route in ROUTES.values()}
"""Every route by its command class, for policies sending typed commands."""
