"""The commands ``runlog send`` can send, with their fields, read off the pydantic models.

Nothing here is written by hand: subjects, fields, types, defaults and bounds come from
``events.commands.COMMANDS`` and each model's JSON schema, so the list cannot drift.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = ["CommandDoc", "FieldDoc", "command_docs"]

_ID_PATTERN = "^[A-Za-z0-9_-]{1,128}$"
_BOUNDS = (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="),
           ("exclusiveMaximum", "<"), ("minLength", "length >="), ("maxLength", "length <="),
           ("minItems", "items >="), ("maxItems", "items <="))


@dataclass(frozen=True, slots=True)
class FieldDoc:
    """One field of a command body."""

    name: str
    type: str
    required: bool
    default: str
    rules: str


@dataclass(frozen=True, slots=True)
class CommandDoc:
    """One command: its subject, what it does and its fields."""

    subject: str
    summary: str
    fields: tuple[FieldDoc, ...]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {"subject": self.subject, "summary": self.summary,
                "fields": [vars_of(f) for f in self.fields]}


def vars_of(doc: FieldDoc) -> dict[str, Any]:
    """A field as a JSON object."""
    return {"name": doc.name, "type": doc.type, "required": doc.required,
            "default": doc.default, "rules": doc.rules}


def command_docs(only: str | None = None) -> list[CommandDoc]:
    """Every command, or those of ``only`` (a subject or an aggregate), sorted by subject."""
    from events.commands import COMMANDS

    wanted = (only or "").removeprefix("runlog.cmd.")
    return [_doc(f"runlog.cmd.{subject}", cls.model_json_schema())
            for subject, cls in sorted(COMMANDS.items())
            if not wanted or subject == wanted or subject.startswith(wanted + ".")]


def _doc(subject: str, schema: dict[str, Any]) -> CommandDoc:
    required = set(schema.get("required", ()))
    defs = schema.get("$defs", {})
    fields = tuple(
        FieldDoc(name, _type(prop, defs), name in required,
                 json.dumps(prop["default"]) if "default" in prop else "", _rules(prop, defs))
        for name, prop in schema.get("properties", {}).items())
    summary = (schema.get("description") or "").strip().split("\n\n")[0].replace("\n", " ")
    return CommandDoc(subject, summary.replace("``", "`"), fields)


def _type(prop: dict[str, Any], defs: dict[str, Any]) -> str:
    if "$ref" in prop:
        return _type(defs.get(prop["$ref"].rsplit("/", 1)[-1], {}), defs)
    if "anyOf" in prop:
        kinds = [_type(p, defs) for p in prop["anyOf"] if p.get("type") != "null"]
        nullable = any(p.get("type") == "null" for p in prop["anyOf"])
        return " | ".join(kinds) + (" | null" if nullable else "")
    if "enum" in prop:
        return "|".join(str(v) for v in prop["enum"])
    if prop.get("pattern") == _ID_PATTERN:
        return "id"
    if prop.get("type") == "array":
        return f"[{_type(prop.get('items', {}), defs)}]"
    if prop.get("type") == "object" or "properties" in prop:
        return _object_type(prop, defs)
    kind = prop.get("type")
    if kind is None:
        return "any"
    return "time" if prop.get("format") == "date-time" else str(kind)


def _object_type(prop: dict[str, Any], defs: dict[str, Any]) -> str:
    if prop.get("properties"):
        return "{" + ", ".join(prop["properties"]) + "}"
    extra = prop.get("additionalProperties", True)
    return f"{{str: {_type(extra, defs)}}}" if isinstance(extra, dict) else "object"


def _rules(prop: dict[str, Any], defs: dict[str, Any]) -> str:
    parts = [f"{word} {prop[key]}" for key, word in _BOUNDS if key in prop]
    if "pattern" in prop and prop["pattern"] != _ID_PATTERN:
        parts.append(f"matches {prop['pattern']}")
    for option in prop.get("anyOf", ()):
        if option.get("type") != "null":
            parts.append(_rules(option, defs))
    return ", ".join(p for p in parts if p)
