"""Requests refused before anything is loaded: bad JSON, bad fields, hostile ids, unknown
subjects, oversized bodies, and a fuzzer; one shared service answers them all."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import pytest

from events.commands import COMMANDS
from tests.support.service_client import ERROR_CODES, ServiceClient

pytestmark = [pytest.mark.nats, pytest.mark.asyncio(loop_scope="module")]


@pytest.fixture
def client(shared_client: ServiceClient) -> ServiceClient:
    """One service for the whole module: these requests write nothing, or under fresh ids."""
    return shared_client

HOSTILE_IDS = ["a.b", "*", ">", "", " ", "a b", "x" * 129, "r\u00e9sum\u00e9", "\u0440\u0443\u043d",
               "tab\tid", "new\nline", "nul\x00", "a/b", "$JS"]
"""Ids the id rule refuses (dots, wildcards, blanks, too long, unicode, control characters)."""



@pytest.mark.parametrize("body", [
    b"not json", b"{", b"", b"[]", b"[1, 2]", b'"a string"', b"5", b"null", b"true",
    b"\xff\xfe\xfd", b'{"name": "\xff\xfe"}', b'{"name": "ok"}\x00', b"{'name': 'x'}",
], ids=lambda b: repr(b)[:30])
async def test_a_body_that_is_not_a_json_object_is_invalid_json(client: ServiceClient,
                                                                body: bytes) -> None:
    """Not JSON, JSON that is not an object, or invalid UTF-8: invalid_json, nothing written."""
    error = await client.refused("run.create", body, "invalid_json")
    assert error["details"] == {}
    await client.still_serving()


@pytest.mark.parametrize(("subject", "body", "loc"), [
    ("run.create", {}, ["name"]),
    ("run.create", {"name": 5}, ["name"]),
    ("run.create", {"name": "n", "labels": ["a"]}, ["labels"]),
    ("run.create", {"name": "n", "surprise": True}, ["surprise"]),
    ("run.create", {"name": "n", "budget": {"max_tokens": -1}}, ["budget", "max_tokens"]),
    ("run.start", {}, ["run_id"]),
    ("run.start", {"run_id": 5}, ["run_id"]),
    ("worker.register", {"worker_id": "w1", "capacity": "5"}, ["capacity"]),
    ("worker.register", {"worker_id": "w1", "capacity": 0}, ["capacity"]),
    ("task.submit", {"run_id": "r1"}, ["kind"]),
    ("task.submit", {"run_id": "r1", "kind": "llm", "priority": "5"}, ["priority"]),
    ("task.submit", {"run_id": "r1", "kind": "llm", "priority": 5.5}, ["priority"]),
    ("task.submit", {"run_id": "r1", "kind": "llm", "priority": True}, ["priority"]),
    ("task.submit", {"run_id": "r1", "kind": "llm", "priority": 10}, ["priority"]),
    ("task.submit", {"run_id": "r1", "kind": "llm", "priority": -1}, ["priority"]),
    ("task.submit", {"run_id": "r1", "kind": "llm", "max_attempts": 0}, ["max_attempts"]),
    ("task.submit", {"run_id": "r1", "kind": "llm", "payload": [1]}, ["payload"]),
    ("task.submit", {"run_id": "r1", "kind": 5}, ["kind"]),
    ("task.claim", {"worker_id": "w1", "kinds": "llm"}, ["kinds"]),
    ("task.start", {"task_id": "t1", "worker_id": "w1"}, ["lease_epoch"]),
    ("task.start", {"task_id": "t1", "worker_id": "w1", "lease_epoch": "1"}, ["lease_epoch"]),
    ("task.fail", {"task_id": "t1", "worker_id": "w1", "lease_epoch": 1}, ["error_class"]),
    ("task.fail", {"task_id": "t1", "worker_id": "w1", "lease_epoch": 1,
                   "error_class": "made_up"}, ["error_class"]),
    ("model.register", {"model": "m", "provider": "p", "input_usd_per_mtok": -1.0,
                        "output_usd_per_mtok": 1.0}, ["input_usd_per_mtok"]),
    ("model.register", {"model": "m", "input_usd_per_mtok": 1.0,
                        "output_usd_per_mtok": 1.0}, ["provider"]),
    ("usage.record", {"run_id": "r1", "model": "gpt-4o", "tokens_in": -1, "tokens_out": 1},
     ["tokens_in"]),
    ("usage.record", {"run_id": "r1", "model": "gpt-4o", "tokens_in": "5", "tokens_out": 1},
     ["tokens_in"]),
    ("usage.record", {"run_id": "r1", "model": 5, "tokens_in": 1, "tokens_out": 1}, ["model"]),
    ("usage.record", {"run_id": "r1", "model": "gpt-4o", "tokens_in": 1}, ["tokens_out"]),
])
async def test_an_invalid_field_is_validation_failed(client: ServiceClient, subject: str,
                                                     body: dict[str, Any],
                                                     loc: list[str]) -> None:
    """Missing, mistyped (no coercion), out-of-range or unknown fields: the reply says where."""
    error = await client.refused(subject, body, "validation_failed")
    assert error["details"]["errors"][0]["loc"] == loc, error
    assert error["message"].startswith(".".join(loc) + ":"), error


@pytest.mark.parametrize("field", ["run_id", "command_id"])
@pytest.mark.parametrize("hostile", HOSTILE_IDS, ids=repr)
async def test_a_hostile_id_is_validation_failed(client: ServiceClient, field: str,
                                                 hostile: str) -> None:
    """Ids travel in subjects: anything outside 1-128 of [A-Za-z0-9_-] is refused."""
    error = await client.refused("run.create", {"name": "n", field: hostile},
                                 "validation_failed")
    assert error["details"]["errors"][0]["loc"] == [field]


@pytest.mark.parametrize(("subject", "body"), [
    ("worker.register", {"worker_id": "a.b"}),
    ("task.claim", {"worker_id": ">"}),
    ("task.submit", {"task_id": "*", "run_id": "r1", "kind": "llm"}),
    ("task.succeed", {"task_id": "t1", "worker_id": "w 1", "lease_epoch": 1}),
    ("usage.record", {"run_id": "r1", "task_id": "", "model": "gpt-4o", "tokens_in": 1,
                      "tokens_out": 1}),
    ("breaker.acquire", {"breaker_id": "x" * 129}),
])
async def test_every_id_field_obeys_the_id_rule(client: ServiceClient, subject: str,
                                                body: dict[str, Any]) -> None:
    """Not only run ids: worker, task and breaker ids too."""
    await client.refused(subject, body, "validation_failed")


async def test_the_longest_valid_id_is_accepted(client: ServiceClient) -> None:
    """128 id characters are fine."""
    run_id = "R" * 64 + "-_" * 32
    assert len(run_id) == 128
    assert (await client.ok("run.create", {"run_id": run_id, "name": "n"}))["id"] == run_id


@pytest.mark.parametrize("subject", ["nope.x", "run.explode", "run.create.extra", "run",
                                     "task.claim.now", "runlog.cmd"])
async def test_a_subject_without_a_command_is_unknown_command(client: ServiceClient,
                                                              subject: str) -> None:
    """The catch-all answers: no stall, no timeout."""
    error = await client.refused(subject, {"name": "n"}, "unknown_command")
    assert error["message"] == f"no command is served on runlog.cmd.{subject}"


async def test_a_body_over_64_kib_is_payload_too_large(client: ServiceClient) -> None:
    """The limit is 64 KiB: exactly 65536 bytes pass, one more byte does not."""
    def padded(size: int) -> bytes:
        head = b'{"run_id": "big", "name": "n"'
        return head + b" " * (size - len(head) - 1) + b"}"

    error = await client.refused("run.create", padded(65_537), "payload_too_large")
    assert error["details"] == {"limit": 65_536, "size": 65_537}
    fits = await client.ok("run.create", padded(65_536))
    assert fits["id"] == "big"


def _hostile_value(rng: random.Random, depth: int = 0) -> Any:
    """A random JSON value leaning on what breaks parsers and validators."""
    choices: list[Any] = [
        None, True, False, 0, -1, 2**63, -(2**70), 1e308, -0.0, 0.5, "", " ", "a.b", "*", ">",
        "x" * 200, "\u0000", "\ud7ff\ue000", "\U0001f600", "r1", "llm", "gpt-4o", 9, 10, [], {},
    ]
    if depth < 3 and rng.random() < 0.3:
        if rng.random() < 0.5:
            return [_hostile_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
        return {rng.choice(["a", "run_id", "", "name"]): _hostile_value(rng, depth + 1)
                for _ in range(rng.randint(0, 3))}
    return rng.choice(choices)


_POOL = ["r1", "r2", "w1", "w2", "t1", "t2", "b1"]
_TEMPLATES: dict[str, dict[str, Any]] = {
    "run.create": {"run_id": "r2", "name": "n", "budget": {"max_tokens": 50}},
    "run.start": {"run_id": "r2"},
    "run.succeed": {"run_id": "r2"},
    "run.fail": {"run_id": "r2", "reason": "x"},
    "run.cancel": {"run_id": "r2"},
    "worker.register": {"worker_id": "w2", "kinds": ["llm"], "capacity": 2},
    "worker.heartbeat": {"worker_id": "w1"},
    "task.submit": {"task_id": "t1", "run_id": "r1", "kind": "llm", "priority": 3,
                    "concurrency_key": "k", "max_concurrency": 2, "timeout_s": 60},
    "task.claim": {"worker_id": "w1"},
    "task.start": {"task_id": "t1", "worker_id": "w1", "lease_epoch": 1},
    "task.heartbeat": {"task_id": "t1", "worker_id": "w1", "lease_epoch": 1},
    "task.succeed": {"task_id": "t1", "worker_id": "w1", "lease_epoch": 1, "result": {}},
    "task.fail": {"task_id": "t1", "worker_id": "w1", "lease_epoch": 1, "error_class": "auth"},
    "task.cancel": {"task_id": "t2"},
    "model.register": {"model": "fuzz-m", "provider": "p", "input_usd_per_mtok": 1.0,
                       "output_usd_per_mtok": 1.0},
    "usage.record": {"run_id": "r1", "model": "gpt-4o", "tokens_in": 10, "tokens_out": 10},
    "budget.create": {"budget_id": "b1", "name": "b", "max_tokens": 100},
    "breaker.record": {"breaker_id": "b1", "outcome": "failure"},
    "breaker.acquire": {"breaker_id": "b1"},
    "run.configure": {"run_id": "r1", "max_concurrency": 3},
    "queue.configure": {"kind": "llm", "max_running": 4},
    "task.defer": {"task_id": "t1", "not_before": "2030-01-01T00:00:00Z"},
    "task.requeue": {"task_id": "t1", "max_attempts": 2},
}
"""Valid bodies the fuzzer varies, so that some requests get past validation."""


def _varied(rng: random.Random, subject: str) -> dict[str, Any]:
    """A template body with its ids drawn from a small pool and maybe one field spoiled."""
    body = dict(_TEMPLATES.get(subject) or rng.choice(list(_TEMPLATES.values())))
    for key in [k for k in body if k.endswith("_id")]:
        body[key] = rng.choice(_POOL)
    if rng.random() < 0.4:
        body[rng.choice(list(body))] = _hostile_value(rng)
    return body


def _hostile_body(rng: random.Random, subject: str) -> bytes:
    """A random body: raw bytes, a non-object, a varied valid one, or random fields."""
    roll = rng.random()
    if roll < 0.15:
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))
    if roll < 0.25:
        return json.dumps(_hostile_value(rng)).encode()
    if roll < 0.6:
        return json.dumps(_varied(rng, subject)).encode()
    command = COMMANDS.get(subject)
    fields = list(command.model_fields) if command else ["name"]
    body = {rng.choice([*fields, "extra"]): _hostile_value(rng) for _ in range(rng.randint(0, 6))}
    text = json.dumps(body)
    if rng.random() < 0.1:
        text = text[: rng.randint(0, len(text))]
    return text.encode()


@pytest.mark.slow
async def test_fuzzed_bodies_on_random_subjects_always_get_a_contract_reply(
        client: ServiceClient) -> None:
    """600 hostile requests: each answered ok or with a contract code, never internal."""
    rng = random.Random(20240601)
    subjects = [*_TEMPLATES, *_TEMPLATES, *COMMANDS, "nope.x", "run.explode", "run.create.x",
                "x", "task", "a-b.c_d"]
    await client.running_run("r1")
    await client.ok("worker.register", {"worker_id": "w1"})
    codes: dict[str, int] = {}
    for _ in range(12):
        batch = [(s := rng.choice(subjects), _hostile_body(rng, s)) for _ in range(50)]
        replies = await _send_all(client, batch)
        for (subject, body), reply in zip(batch, replies, strict=True):
            code = "ok" if reply.get("ok") is True else reply.get("error", {}).get("code")
            assert code == "ok" or code in ERROR_CODES - {"internal"}, (subject, body, reply)
            codes[str(code)] = codes.get(str(code), 0) + 1
    assert codes.get("ok", 0) > 10, codes
    assert codes.get("validation_failed", 0) > 50, codes
    assert codes.get("invalid_json", 0) > 20, codes
    assert codes.get("unknown_command", 0) > 10, codes
    assert len(codes) >= 6, codes
    await client.still_serving()


async def _send_all(client: ServiceClient, batch: list[tuple[str, bytes]]
                    ) -> list[dict[str, Any]]:
    return list(await asyncio.gather(*(client.send(s, b) for s, b in batch)))
