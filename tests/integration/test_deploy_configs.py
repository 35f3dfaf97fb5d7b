"""The shipped NATS configurations parse with the nats-server binary runlog installs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from services.embedded_nats import find_nats_server

CONFIGS = sorted((Path(__file__).parents[2] / "deploy" / "nats").glob("*.conf"))
SERVER_CONFIGS = [c for c in CONFIGS if c.name not in {"accounts.conf", "tls.conf"}]


@pytest.mark.parametrize("config", SERVER_CONFIGS, ids=lambda c: c.name)
def test_config_is_valid(config: Path) -> None:
    env = os.environ | {f"RUNLOG_{role}_PASSWORD": "secret" for role in
                        ("SERVICE", "OPERATOR", "CLIENT", "ORCHESTRATOR", "READER")}
    result = subprocess.run([str(find_nats_server()), "-t", "-c", config.name], cwd=config.parent,
                            env=env, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    assert "is valid" in result.stderr + result.stdout


def test_every_server_config_is_checked() -> None:
    assert {c.name for c in SERVER_CONFIGS} == {"single.conf", "cluster-1.conf",
                                                "cluster-2.conf", "cluster-3.conf"}
