"""Debian's Chromium for the dashboard test: found, or installed with apt-get when missing."""

from __future__ import annotations

import os
import shutil
import subprocess

__all__ = ["CHROMIUM_ARGS", "chromium_path"]

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
"""Headless flags that work on a machine with no network beyond loopback and the registries."""


def chromium_path() -> str:
    """The Chromium binary; installs Debian's package first if it is missing (as root)."""
    found = shutil.which("chromium")
    if found:
        return found
    if os.geteuid() != 0:
        raise RuntimeError("chromium is not installed and this is not root: "
                           "run `apt-get install -y chromium`")
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "chromium"]
    if subprocess.run(install, env=env, capture_output=True, check=False).returncode != 0:
        # A fresh machine may not have read the package lists yet.
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=False)
        done = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"apt-get install chromium failed: {done.stderr.strip()[-500:]}")
    found = shutil.which("chromium")
    if not found:
        raise RuntimeError("apt-get installed chromium, but it is not on PATH")
    return found
