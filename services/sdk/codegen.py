"""Writes services/sdk/commands.py from the command models: ``python -m services.sdk.codegen``.

Each command model becomes one typed client method whose keyword parameters are the
model's fields. ``--check`` exits with status 1, writing nothing, when the committed
file is stale (a command added, removed or changed without regenerating).
"""

from __future__ import annotations

import json
import re
import sys
import types
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from events.base import Command
from events.catalog.reservation import RELEASE_REASONS
from events.catalog.task import ERROR_CLASSES, ReportedErrorClass
from events.commands import COMMANDS
from services.docs.generated import write_or_check

from .replies import REPLY_TYPES, Reply

__all__ = ["OUTPUT", "main", "method_name", "parameter_default", "render"]

OUTPUT = Path(__file__).with_name("commands.py")
_REGENERATE = "python -m services.sdk.codegen"

_NAMED_LITERALS = {
    frozenset(get_args(ReportedErrorClass)): ("ReportedErrorClass", "events.catalog.task"),
    frozenset(ERROR_CLASSES): ("ErrorClass", "events.catalog.task"),
    frozenset(RELEASE_REASONS): ("ReleaseReason", "events.catalog.reservation"),
}
"""Literal types written by their name in the contract, not as a long list of values."""

_HEADER = '''"""One typed method per command, generated from the models in events/commands/.

Do not edit: change the models and run ``{regenerate}``.
"""

from __future__ import annotations

import abc
{imports}

__all__ = ["CommandMethods"]

R = TypeVar("R", bound=Reply)


class CommandMethods(abc.ABC):
    """Every command of runlog as a method; ``None`` leaves a field to its default."""

    @abc.abstractmethod
    async def _command(self, subject: str, reply_type: type[R], fields: dict[str, object]
                       ) -> R:
        """Sends ``runlog.cmd.<subject>`` with ``fields`` and returns the typed reply."""
'''


def method_name(command: type[Command]) -> str:
    """A command's client method: its class name in snake case (``SubmitTask``: ``submit_task``)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", command.__name__).lower()


def parameter_default(field: FieldInfo) -> object:
    """The method parameter's default: the field's, or None for a default built per instance."""
    return None if field.default_factory is not None else field.default


def _source(value: object) -> str:
    """A default or literal value as Python source, strings in double quotes."""
    return json.dumps(value) if isinstance(value, str) else repr(value)


class _Renderer:
    """Writes annotations as source text and remembers the imports they need."""

    def __init__(self) -> None:
        self.imports: dict[str, set[str]] = {"typing": {"TypeVar"}, ".replies": {"Reply"}}

    def need(self, module: str, name: str) -> str:
        self.imports.setdefault(module, set()).add(name)
        return name

    def annotation(self, hint: Any) -> str:
        origin = get_origin(hint)
        if origin is Annotated:
            return self.annotation(get_args(hint)[0])
        if origin in (Union, types.UnionType):
            return self._union(get_args(hint))
        if origin is Literal:
            return self._literal(get_args(hint))
        if origin is list:
            return f"{self.need('collections.abc', 'Sequence')}[{self.annotation(*get_args(hint))}]"
        if origin is tuple:
            item = get_args(hint)[0]
            return f"{self.need('collections.abc', 'Sequence')}[{self.annotation(item)}]"
        if origin is dict:
            key, value = (self.annotation(arg) for arg in get_args(hint))
            return f"{self.need('collections.abc', 'Mapping')}[{key}, {value}]"
        return self._plain(hint)

    def _plain(self, hint: Any) -> str:
        if hint is type(None):
            return "None"
        if hint is Any:
            return "object"  # a parameter accepting any JSON value
        if hint in (str, int, float, bool):
            return str(hint.__name__)
        if hint is datetime:
            return self.need("datetime", "datetime")
        if hint is Decimal:
            # Money: a Decimal is sent exactly (as a decimal string), a float by its repr.
            return f"{self.need('decimal', 'Decimal')} | float | str"
        if isinstance(hint, type) and issubclass(hint, BaseModel):
            mapping = self.need("collections.abc", "Mapping")
            return f"{self.need(hint.__module__, hint.__name__)} | {mapping}[str, object]"
        raise TypeError(f"the SDK generator cannot write the type {hint!r}")

    def _union(self, members: tuple[Any, ...]) -> str:
        # Literal members are merged into one, and None goes last: ``X | Literal[...] | None``.
        literals = tuple(a for m in members if get_origin(m) is Literal for a in get_args(m))
        others = [m for m in members if get_origin(m) is not Literal and m is not type(None)]
        written = [self._literal(literals)] if literals else []
        written += [self.annotation(m) for m in others]
        if type(None) in members:
            written.append("None")
        return " | ".join(written)

    def _literal(self, values: tuple[Any, ...]) -> str:
        named = _NAMED_LITERALS.get(frozenset(values))
        if named is not None:
            return self.need(named[1], named[0])
        return f"{self.need('typing', 'Literal')}[{', '.join(_source(v) for v in values)}]"

    def import_lines(self) -> str:
        groups: list[list[str]] = [[], [], []]  # standard library, runlog, this package
        for module in sorted(self.imports):
            line = f"from {module} import {', '.join(sorted(self.imports[module]))}"
            rank = 2 if module.startswith(".") else 1 if module.startswith("events") else 0
            groups[rank].append(line)
        return "\n\n".join("\n".join(group) for group in groups if group)


def _parameter(renderer: _Renderer, name: str, field: FieldInfo) -> str:
    annotation = renderer.annotation(field.annotation)
    if field.is_required():
        return f"{name}: {annotation}"
    default = parameter_default(field)
    if default is None and not annotation.endswith("None"):
        annotation += " | None"
    if default is not None and "None" in annotation.split(" | "):
        raise TypeError(f"{name}: a nullable field with a non-null default cannot be omitted "
                        "by passing None")
    return f"{name}: {annotation} = {_source(default)}"


def _ordered_fields(command: type[Command]) -> list[tuple[str, FieldInfo]]:
    fields = [(n, f) for n, f in command.model_fields.items() if n != "command_id"]
    required = [(n, f) for n, f in fields if f.is_required()]
    optional = [(n, f) for n, f in fields if not f.is_required()]
    return [*required, *optional, ("command_id", command.model_fields["command_id"])]


def _summary(command: type[Command]) -> str:
    paragraph = (command.__doc__ or command.__name__).strip().split("\n\n")[0]
    return " ".join(line.strip() for line in paragraph.splitlines())


def _method(renderer: _Renderer, subject: str, command: type[Command]) -> str:
    fields = _ordered_fields(command)
    reply = REPLY_TYPES.get(subject, Reply).__name__
    renderer.need(".replies", reply)
    parameters = "".join(f"        {_parameter(renderer, n, f)},\n" for n, f in fields)
    body = "".join(f'            "{n}": {n},\n' for n, _ in fields)
    return (f"\n    async def {method_name(command)}(\n        self,\n        *,\n{parameters}"
            f"    ) -> {reply}:\n"
            f'        """{_summary(command)}\n\n'
            f"        Sends ``runlog.cmd.{subject}`` (``{command.__name__}``).\n"
            f'        """\n'
            f'        return await self._command("{subject}", {reply}, {{\n{body}        }})\n')


def render(commands: Mapping[str, type[Command]] = COMMANDS) -> str:
    """Returns the source of the generated module for ``commands``."""
    renderer = _Renderer()
    methods = "".join(_method(renderer, subject, commands[subject])
                      for subject in sorted(commands, key=lambda s: method_name(commands[s])))
    header = _HEADER.format(regenerate=_REGENERATE, imports=renderer.import_lines())
    return header + methods


def main(argv: Sequence[str] | None = None) -> int:
    """Writes the module, or with ``--check`` tells whether it is current."""
    args = sys.argv[1:] if argv is None else argv
    return write_or_check(OUTPUT, render(), _REGENERATE, args)


if __name__ == "__main__":
    raise SystemExit(main())
