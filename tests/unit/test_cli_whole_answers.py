"""A verb that reads the read models never passes a cut answer (the service drops rows
past what one reply holds, and marks the result ``truncated``), or none at all, off as
the whole one: it says so and exits non-zero."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

import projections
from projections import QueryResult
from services.cli import main


def _answer(rows: int, truncated: bool, calls: list[str]
            ) -> Callable[..., Awaitable[QueryResult]]:
    async def query_async(sql: str, **kwargs: Any) -> QueryResult:
        calls.append(sql)
        return QueryResult(["run_id"], ["VARCHAR"], [[f"r{n}"] for n in range(rows)],
                           truncated, 7)
    return query_async


@pytest.mark.parametrize(("rows", "truncated", "code", "said"), [
    (2339, True, 1, "only 2339 runs fit in one reply"),  # cut by the reply's size
    (5000, True, 0, ""),  # cut by the limit asked for: said in the note, not an error
    (12, False, 0, ""),
])
def test_a_list_cut_short_by_the_reply_size_says_so_and_fails(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path,
        rows: int, truncated: bool, code: int, said: str) -> None:
    monkeypatch.setattr(projections, "query_async", _answer(rows, truncated, []))
    assert main(["--data-dir", str(tmp_path), "run", "list", "--limit", "5000",
                 "-o", "json"]) == code
    out, err = capsys.readouterr()
    assert out.count('"run_id"') == rows
    assert (said in err) if said else ("fit in one reply" not in err)


def test_a_show_whose_section_did_not_fit_fails_with_one_line(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    calls: list[str] = []
    whole, cut = _answer(1, False, calls), _answer(300, True, calls)

    async def query_async(sql: str, **kwargs: Any) -> QueryResult:
        return await (whole if not calls else cut)(sql, **kwargs)

    monkeypatch.setattr(projections, "query_async", query_async)
    assert main(["--data-dir", str(tmp_path), "run", "show", "r0"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("runlog: only 300 rows of a longer answer came back")
    assert len(err.strip().splitlines()) == 1


def test_a_status_once_that_could_read_nothing_fails(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    monkeypatch.delenv("RUNLOG_NATS_URL", raising=False)
    assert main(["--data-dir", str(tmp_path), "status", "--once", "-o", "json"]) == 1
    view = json.loads(capsys.readouterr().out)
    assert view["problem"].startswith(f"no read models at {tmp_path}")
