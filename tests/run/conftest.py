"""Helpers for `secretd run` tests: secret files to reference, and mount inspection."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

CANARY = "canary-7f3a9c1e-value"


@pytest.fixture
def secret_file(tmp_path: Path):
    """Write a value to a file a ``file:`` reference can name (world-readable for 'nobody')."""

    def make(value: str | bytes, name: str = "value") -> Path:
        path = tmp_path / name
        path.write_bytes(value.encode() if isinstance(value, str) else value)
        path.chmod(0o644)
        return path

    return make


def host_secretd_mounts() -> list[str]:
    """Mount lines on the host that this test's secretd could have made: at /run/secrets
    or under its runtime directory (other tests' daemons may have their own)."""
    places = ("/run/secrets", os.environ["SECRETD_RUNTIME_DIR"])
    with open("/proc/self/mounts") as fh:
        return [line for line in fh if line.split()[1].startswith(places)]


def start_run(ready: Path, *args: str, **popen: object) -> subprocess.Popen[bytes]:
    """Start ``secretd run ARGS`` in the background; return once the command has touched
    ``ready`` (it must), so the test acts while the command runs."""
    proc = subprocess.Popen([sys.executable, "-m", "secretd", "run", *args], **popen)  # type: ignore[call-overload]
    deadline = time.monotonic() + 10
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert ready.exists(), "the command did not start"
    return proc  # type: ignore[no-any-return]
