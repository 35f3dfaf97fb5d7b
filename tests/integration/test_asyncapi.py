"""The committed AsyncAPI document: current, complete, valid and stable across processes."""

from __future__ import annotations

import difflib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import jsonschema
import pytest
from faststream.exceptions import IncorrectState
from faststream.nats import NatsBroker
from faststream.specification.asyncapi.v3_0_0.schema import ApplicationSchema
from pydantic import BaseModel

from events.commands import COMMANDS
from events.errors import ErrorCode
from services.command_service import asyncapi
from services.command_service.asyncapi import DOCUMENT, REGENERATE, render
from services.settings import Settings
from services.sql_subjects import SQL_REPLIES, SQL_REQUESTS

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA = REPO_ROOT / "tests" / "support" / "asyncapi" / "asyncapi-3.0.0.schema.json"
SQL_SUBJECTS: dict[str, type[BaseModel]] = SQL_REQUESTS


def resolve(node: Any, root: dict[str, Any]) -> Any:
    """``node`` with every local ``$ref`` replaced by what it points to inside ``root``."""
    if isinstance(node, list):
        return [resolve(item, root) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if not (isinstance(ref, str) and ref.startswith("#/")):
        return {key: resolve(value, root) for key, value in node.items()}
    target: Any = root
    for token in ref[2:].split("/"):
        # JSON pointer in a URI fragment: percent-encoded, then ~1 and ~0 escaped.
        target = target[unquote(token).replace("~1", "/").replace("~0", "~")]
    siblings = {key: value for key, value in node.items() if key != "$ref"}
    return resolve(target, root) | resolve(siblings, root)


def model_payload(subject: str) -> dict[str, Any]:
    """A command's own JSON schema, references resolved, without its title."""
    schema = COMMANDS[subject].model_json_schema()
    resolved: dict[str, Any] = resolve(schema, schema)
    return {k: v for k, v in resolved.items() if k not in ("$defs", "title")}


def document_payload(document: dict[str, Any], address: str) -> dict[str, Any]:
    """The payload schema the document gives the one message of a channel, resolved."""
    [message] = document["channels"][address]["messages"].values()
    payload: dict[str, Any] = resolve(message, document)["payload"]
    return {k: v for k, v in payload.items() if k != "title"}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    """The document as the code generates it now."""
    generated: dict[str, Any] = json.loads(render())
    return generated


def test_committed_document_is_current() -> None:
    committed = DOCUMENT.read_text(encoding="utf-8") if DOCUMENT.exists() else ""
    generated = render()
    if committed != generated:
        diff = difflib.unified_diff(committed.splitlines(), generated.splitlines(),
                                    "committed", "generated", lineterm="", n=1)
        hint = "\n".join(list(diff)[:30])
        pytest.fail(f"docs/asyncapi.json is stale: run {REGENERATE}\n{hint}")
    assert asyncapi.main(["--check"]) == 0


def test_document_is_asyncapi_3_that_faststream_can_serve() -> None:
    parsed = ApplicationSchema.model_validate_json(DOCUMENT.read_bytes())
    assert parsed.asyncapi == "3.0.0"


def test_every_command_subject_is_a_channel_with_its_payload_schema(
        document: dict[str, Any]) -> None:
    expected = {f"runlog.cmd.{subject}" for subject in COMMANDS} | {"runlog.cmd.>"}
    replies = {f"{subject}.reply" for subject in SQL_SUBJECTS} | {"runlog.cmd.reply"}
    assert set(document["channels"]) == expected | set(SQL_SUBJECTS) | replies
    for subject in COMMANDS:
        address = f"runlog.cmd.{subject}"
        channel = document["channels"][address]
        assert channel["address"] == address
        assert channel["bindings"]["nats"]["queue"] == Settings.model_construct().command_queue
        assert document_payload(document, address) == model_payload(subject), subject
        assert document["operations"][address]["action"] == "receive"


def test_catch_all_subject_is_documented(document: dict[str, Any]) -> None:
    channel = document["channels"]["runlog.cmd.>"]
    assert "unknown_command" in channel["description"]
    assert document_payload(document, "runlog.cmd.>") == {"type": "object"}


def test_nested_models_are_inlined_not_dangling(document: dict[str, Any]) -> None:
    # A "#/$defs/..." reference copied from pydantic would point nowhere in this document.
    assert "#/$defs/" not in json.dumps(document)
    budget = document_payload(document, "runlog.cmd.run.create")["properties"]["budget"]
    assert {"max_tokens", "max_cost_usd"} <= set(budget["anyOf"][0]["properties"])


@pytest.mark.parametrize(("variable", "value"), [
    ("PYTHONHASHSEED", "1"), ("PYTHONHASHSEED", "2"), ("RUNLOG_COMMAND_QUEUE", "elsewhere"),
])
def test_another_process_generates_the_same_text(variable: str, value: str) -> None:
    env = os.environ | {variable: value}
    done = subprocess.run(
        [sys.executable, "-c",
         "import sys; from services.command_service.asyncapi import render; "
         "sys.stdout.write(render())"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == render()


def test_main_writes_and_checks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "docs" / "asyncapi.json"
    monkeypatch.setattr(asyncapi, "DOCUMENT", target)
    assert asyncapi.main(["--check"]) == 1
    assert asyncapi.main([]) == 0
    assert target.read_text(encoding="utf-8") == render()
    assert asyncapi.main(["--check"]) == 0
    target.write_text("{}\n", encoding="utf-8")
    assert asyncapi.main(["--check"]) == 1


def test_documentation_app_never_connected() -> None:
    broker = asyncapi.app.broker
    assert isinstance(broker, NatsBroker)
    assert not broker.running
    with pytest.raises(IncorrectState):
        _ = broker.connection


def test_the_read_sides_sql_subjects_are_channels_with_their_request_schemas(
        document: dict[str, Any]) -> None:
    for address, model in SQL_SUBJECTS.items():
        channel = document["channels"][address]
        assert channel["bindings"]["nats"]["queue"] == "runlog-sql"
        assert "ok true" in channel["description"]
        schema = model.model_json_schema()
        expected = {k: v for k, v in resolve(schema, schema).items() if k != "title"}
        assert document_payload(document, address) == expected, address
        assert document["operations"][address]["action"] == "receive"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    """The official AsyncAPI 3.0.0 JSON Schema (vendored), as a validator."""
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def test_committed_document_is_valid_against_the_asyncapi_3_schema(
        validator: jsonschema.Draft7Validator) -> None:
    committed = json.loads(DOCUMENT.read_text(encoding="utf-8"))
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in validator.iter_errors(committed)]
    assert errors == []


def test_the_schema_check_refuses_a_broken_document(
        validator: jsonschema.Draft7Validator, document: dict[str, Any]) -> None:
    broken = json.loads(json.dumps(document))
    broken["channels"]["runlog.sql.query"]["address"] = 42
    del broken["info"]["title"]
    assert len(list(validator.iter_errors(broken))) >= 2


def test_every_reference_in_the_document_resolves(document: dict[str, Any]) -> None:
    # resolve() raises KeyError on a reference that points nowhere.
    assert "$ref" not in json.dumps(resolve(document["operations"], document))


def test_the_sql_subjects_list_their_replies_with_the_reply_models_schemas(
        document: dict[str, Any]) -> None:
    assert set(SQL_REPLIES) == set(SQL_SUBJECTS) == {
        "runlog.sql.query", "runlog.sql.export", "runlog.sql.rebuild"}
    for subject, models in SQL_REPLIES.items():
        reply = resolve(document["operations"][subject]["reply"], document)
        assert reply["channel"]["address"] is None  # the requester's own inbox
        payloads = {message["name"]: message["payload"] for message in reply["messages"]}
        assert list(payloads) == [model.__name__ for model in models]
        for model in models:
            schema = model.model_json_schema()
            expected = resolve(schema, schema)
            expected.pop("$defs", None)
            assert payloads[model.__name__] == expected, (subject, model.__name__)


def test_a_query_request_documents_the_streamed_form(document: dict[str, Any]) -> None:
    fields = document_payload(document, "runlog.sql.query")["properties"]
    assert set(fields) == {"sql", "limit", "timeout_s", "wait_seq", "wait_timeout_s", "stream"}
    parts = resolve(document["channels"]["runlog.sql.query.reply"], document)["messages"]
    assert {"QueryReply", "StreamPart", "StreamEndReply", "ErrorReply"} == set(parts)


def test_every_command_lists_the_reply_envelope(document: dict[str, Any]) -> None:
    for address in [f"runlog.cmd.{subject}" for subject in COMMANDS] + ["runlog.cmd.>"]:
        reply = resolve(document["operations"][address]["reply"], document)
        names = [message["name"] for message in reply["messages"]]
        assert names == (["CommandRefused"] if address == "runlog.cmd.>"
                         else ["CommandAccepted", "CommandRefused"]), address
    refused = document["components"]["messages"]["runlog.cmd.reply.CommandRefused"]["payload"]
    codes = resolve(refused, document)["properties"]["error"]["properties"]["code"]["enum"]
    assert set(codes) == {str(code) for code in ErrorCode}
