"""The command line's shared surface: version, global flags, fast help, one-line errors."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import click
import pytest

from services.cli import cli, main

HEAVY = ("nats", "duckdb", "pydantic", "pydantic_settings", "rich", "faststream",
         "opentelemetry", "pyarrow", "matplotlib")


def leaf_commands(group: click.Group, path: str = "runlog") -> Iterator[tuple[str, click.Command]]:
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from leaf_commands(command, f"{path} {name}")
        else:
            yield f"{path} {name}", command


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("runlog 0.")


@pytest.mark.parametrize("flag", ["--server", "--data-dir", "--color", "--verbose"])
def test_every_verb_takes_the_global_flags(flag: str) -> None:
    missing = [path for path, command in leaf_commands(cli)
               if not any(flag in param.opts for param in command.params)]
    assert missing == []


def test_help_loads_no_heavy_module() -> None:
    probe = ("import sys; from services.cli import main; main(['--help']); main(['sql', '--help']);"
             f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_help_shows_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sql", "--help"]) == 0
    out = capsys.readouterr().out
    assert "[default: 1000" in out
    assert "RUNLOG_DATA_DIR" in out


def test_a_usage_error_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", "--until-seq", "-5"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("runlog replay: ")
    assert "--until-seq" in err


def test_a_bad_setting_names_the_variable_and_the_allowed_values(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("RUNLOG_LEASE_TTL_S", "abc")
    assert main(["sql", "SELECT 1"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "runlog: RUNLOG_LEASE_TTL_S=abc is not valid; allowed: a number > 0 and <= 3600"


def test_flags_after_the_verb_override_the_environment(
        monkeypatch: pytest.MonkeyPatch, tmp_path: object, capsys: pytest.CaptureFixture[str]
        ) -> None:
    monkeypatch.setenv("RUNLOG_DATA_DIR", "/nonexistent/elsewhere")
    assert main(["send", "run.create", "{}", "--data-dir", str(tmp_path)]) == 1
    assert f"runlog up is not running on {tmp_path}" in capsys.readouterr().err
