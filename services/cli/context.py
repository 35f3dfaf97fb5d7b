"""What every verb shares: the global flags, the settings they override, consoles, errors.

Only ``click`` is imported here; every heavy module is imported by the verb that needs
it, so ``runlog --help`` answers without loading NATS, DuckDB or pydantic.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from rich.console import Console

    from services.settings import Settings

__all__ = ["COLORS", "CliState", "RunlogCommand", "RunlogGroup", "state"]

COLORS = ("auto", "always", "never")
_PIPE_WIDTH = 10_000
"""Output to a pipe or file is not wrapped to a terminal's width: each row stays one line."""
F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class CliState:
    """The global flags of one invocation, and what is built from them on first use."""

    server: str | None = None
    data_dir: Path | None = None
    color: str = "auto"
    verbose: bool = False
    _settings: Settings | None = field(default=None, repr=False)
    _consoles: dict[bool, Console] = field(default_factory=dict, repr=False)

    def settings(self) -> Settings:
        """The settings: ``RUNLOG_*`` variables, overridden by ``--server`` and ``--data-dir``."""
        if self._settings is None:
            from services.settings import load_settings

            self._settings = load_settings(nats_url=self.server, data_dir=self.data_dir)
        return self._settings

    def console(self, stderr: bool = False) -> Console:
        """A rich console on stdout (or stderr) that honours ``--color``."""
        if stderr not in self._consoles:
            from rich.console import Console

            force = True if self.color == "always" else None
            console = Console(stderr=stderr, force_terminal=force, highlight=False,
                              color_system=None if self.color == "never" else "auto",
                              no_color=self.color == "never")
            if not console.is_terminal:
                console.width = _PIPE_WIDTH
            self._consoles[stderr] = console
        return self._consoles[stderr]


_OUTSIDE = CliState()


def state() -> CliState:
    """The state of the running invocation (defaults when called outside one)."""
    ctx = click.get_current_context(silent=True)
    return ctx.find_root().ensure_object(CliState) if ctx is not None else _OUTSIDE


def _remember(name: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> None:
        # Given before or after the verb, a flag lands on the invocation's one state.
        if value is not None and value is not False:
            setattr(ctx.find_root().ensure_object(CliState), name, value)
    return callback


def common_params() -> list[click.Parameter]:
    """The flags every verb takes (they may also come before the verb)."""
    return [
        click.Option(["--server"], metavar="URL", expose_value=False, callback=_remember("server"),
                     help="NATS server(s), comma-separated", show_default="RUNLOG_NATS_URL, "
                     "else the local `runlog up`", is_eager=True),
        click.Option(["--data-dir"], metavar="DIR", expose_value=False, is_eager=True,
                     type=click.Path(path_type=Path, file_okay=False),
                     callback=_remember("data_dir"), help="local state and read models",
                     show_default="RUNLOG_DATA_DIR, else ./.runlog"),
        click.Option(["--color"], type=click.Choice(COLORS), expose_value=False, is_eager=True,
                     callback=_remember("color"), help="colour in output",
                     show_default="auto"),
        click.Option(["-v", "--verbose"], is_flag=True, expose_value=False, is_eager=True,
                     callback=_remember("verbose"), help="log at debug level"),
    ]


class RunlogCommand(click.Command):
    """A verb: takes the common flags, and runs with logging and telemetry set up."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.extend(common_params())

    def invoke(self, ctx: click.Context) -> Any:
        """Runs the verb inside its runtime."""
        with _runtime(ctx.find_root().ensure_object(CliState)):
            return super().invoke(ctx)


class RunlogGroup(click.Group):
    """A group of verbs whose commands and subgroups are runlog's own kinds."""

    command_class = RunlogCommand

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.extend(common_params())


RunlogGroup.group_class = RunlogGroup


@contextlib.contextmanager
def _runtime(cli: CliState) -> Iterator[None]:
    logging.basicConfig(level=logging.DEBUG if cli.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from services.telemetry import configure_telemetry

    provider = configure_telemetry()
    try:
        yield
    finally:
        if provider is not None:
            provider.shutdown()  # flushes the batched spans
