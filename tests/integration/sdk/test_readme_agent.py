"""The README's complete agent, run as a user runs it, against a running runlog."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

from services.sdk import Client
from tests.integration.sdk.conftest import eventually, exited, rows, spawn

pytestmark = pytest.mark.nats

README = Path(__file__).resolve().parents[3] / "README.md"
_MARKER = "<!-- The block below runs in tests/integration/sdk/test_readme_agent.py. -->"


def readme_agent() -> str:
    """The Python block that follows the marker in the README."""
    found = re.search(re.escape(_MARKER) + r"\s*```python\n(.*?)```",
                      README.read_text(encoding="utf-8"), re.S)
    assert found, "the README's agent example is gone"
    return found.group(1)


def test_the_agent_is_about_twenty_lines() -> None:
    code = [line for line in readme_agent().splitlines() if line.strip()]
    assert len(code) <= 25, len(code)


async def test_the_readme_agent_runs_against_runlog(client: Client, nats_url: str,
                                                    tmp_path: Path) -> None:
    script = tmp_path / "agent.py"
    script.write_text(readme_agent(), encoding="utf-8")
    agent = spawn([str(script)], nats_url, tmp_path)
    try:
        done = await eventually(client, "SELECT state, worker_id FROM tasks "
                                        "WHERE kind = 'summarise'",
                                lambda r: rows(r) == [("succeeded", "summariser-1")])
        agent.send_signal(signal.SIGTERM)
    finally:
        stderr = await exited(agent)
    assert agent.returncode == 0, stderr
    assert rows(done) == [("succeeded", "summariser-1")]
    usage = await client.query("SELECT model, tokens_out, worker_id FROM usage")
    assert rows(usage) == [("gpt-4.1-mini", 20, "summariser-1")]
    worker = await eventually(client, "SELECT state FROM workers "
                                      "WHERE worker_id = 'summariser-1'",
                              lambda r: rows(r) == [("offline",)])
    assert rows(worker) == [("offline",)]
