"""Every verb meets bad input with one line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.cli import main

BAD_INPUT = [
    ["up", "--no-such-flag"],
    ["demo", "--runs", "0"],
    ["sql"],
    ["sql", "DELETE FROM runs"],
    ["sql", "SELECT 1", "--limit", "-1"],
    ["sql", "SELECT 1", "-o", "xml"],
    ["send"],
    ["send", "run.create", "@/nonexistent/body.json"],
    ["send", "run.create", "{}"],
    ["send", "--list", "no.such"],
    ["replay", "--until-seq", "-5"],
    ["replay", "--until-seq", "1", "--until", "2026-01-01"],
    ["replay", "--until", "yesterday"],
    ["export"],
    ["export", "nightly", "--format", "zip"],
    ["models", "load", "/nonexistent/prices.json"],
    ["models", "load", "{list}"],
    ["models", "load", "{not_json}"],
    ["models", "load", "{wrong_fields}"],
    ["health", "--max-lag", "x"],
    ["status", "--interval", "0"],
    ["status", "-o", "json"],
    ["tail", "--aggregate", "run.*"],
    ["tail", "--count", "0"],
    ["trace", "not-a-trace-id"],
    ["trace", "0af7651916cd43dd8448eb211c80319c"],
    ["report", "monthly"],
    ["report", "daily", "--periods", "0"],
    ["run", "show"],
    ["run", "show", "r1"],
    ["run", "list", "--state", "x'; DROP"],
    ["task", "list", "--limit", "0"],
    ["worker", "show", "a b"],
    ["budget", "nope"],
    ["--color", "pink", "sql", "SELECT 1"],
    ["no-such-verb"],
]


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    made = {"list": "[1, 2]", "not_json": "{prices", "wrong_fields": json.dumps(
        {"models": [{"model": "m", "provider": "p", "input_usd_per_mtok": "cheap",
                     "output_usd_per_mtok": 1}]})}
    for name, text in made.items():
        (tmp_path / f"{name}.json").write_text(text)
    return {f"{{{name}}}": str(tmp_path / f"{name}.json") for name in made}


@pytest.mark.parametrize("argv", BAD_INPUT, ids=" ".join)
def test_bad_input_is_one_line_and_a_non_zero_exit(
        argv: list[str], files: dict[str, str], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    args = [files.get(a, a) for a in argv]
    code = main([*args, "--data-dir", str(tmp_path / "data")] if args[0] != "--color"
                else args)
    captured = capsys.readouterr()
    assert code != 0
    assert "Traceback" not in captured.err
    assert len(captured.err.strip().splitlines()) == 1, captured.err
    assert captured.err.startswith("runlog")


def test_a_bad_variable_is_named_with_what_it_takes(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("RUNLOG_REPLICAS", "seven")
    assert main(["health"]) == 1
    assert capsys.readouterr().err.strip() == (
        "runlog: RUNLOG_REPLICAS=seven is not valid; allowed: an integer >= 1 and <= 5")


def test_a_blank_path_variable_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.nats_connection import connection_options
    from services.settings import load_settings

    for name in ("RUNLOG_NATS_TLS_CA", "RUNLOG_NATS_TLS_CERT", "RUNLOG_NATS_TLS_KEY",
                 "RUNLOG_NATS_CREDS", "RUNLOG_NATS_NKEY_SEED"):
        monkeypatch.setenv(name, " ")
    settings = load_settings()
    assert (settings.nats_tls_ca, settings.nats_creds, settings.nats_nkey_seed) == (
        None, None, None)
    assert connection_options(settings) == {"inbox_prefix": "_INBOX"}


@pytest.mark.parametrize(("name", "value", "allowed"), [
    ("RUNLOG_STREAM", "a.b", "a stream name: letters, digits, _ and -"),
    ("RUNLOG_STREAM", "", "a stream name: letters, digits, _ and -"),
    ("RUNLOG_DUPLICATE_WINDOW_S", "inf", "a number > 0 and <= 604800"),
    ("RUNLOG_SQL_MEMORY_LIMIT", "0GB", "a size such as 512MB, 1GB or 2GiB"),
    ("RUNLOG_HTTP_ADDR", ":8321", "HOST:PORT (port 0 picks a free one) or off"),
])
def test_a_value_that_would_fail_later_is_refused_at_once_with_what_it_takes(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str,
        value: str, allowed: str) -> None:
    monkeypatch.setenv(name, value)
    assert main(["health"]) == 1
    assert capsys.readouterr().err.strip() == (
        f"runlog: {name}={value} is not valid; allowed: {allowed}")


def test_a_blank_data_dir_is_the_default_one(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.settings import load_settings

    monkeypatch.setenv("RUNLOG_DATA_DIR", " ")
    assert str(load_settings().data_dir) == ".runlog"
