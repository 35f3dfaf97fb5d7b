"""docs/state-machines.md is generated from the tables and must be kept current."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.docs import state_machines as docs
from services.docs.state_machines import DOC_PATH, main, render
from services.domain import MACHINES
from services.domain.machine import targets_of


def test_committed_document_is_current() -> None:
    assert DOC_PATH.exists(), "run: python -m services.docs.state_machines"
    assert DOC_PATH.read_text() == render(), "stale; run: python -m services.docs.state_machines"
    assert main(["--check"]) == 0


def test_every_machine_has_a_section_with_a_diagram() -> None:
    text = render()
    for name, machine in MACHINES.items():
        assert f"(`{name}`)" in text
        for (source, event), target in machine.table.edges.items():
            for state in targets_of(target):
                assert f"    {source or '[*]'} --> {state}: {event}" in text
    assert text.count("stateDiagram-v2") == len(MACHINES)


def test_main_writes_and_checks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "docs" / "state-machines.md"
    monkeypatch.setattr(docs, "DOC_PATH", target)
    assert main(["--check"]) == 1
    assert main([]) == 0
    assert target.read_text() == render()
    assert main(["--check"]) == 0
    target.write_text("edited by hand\n")
    assert main(["--check"]) == 1
