"""Helpers for `secretd run` tests: secret files to reference, and mount inspection."""

from __future__ import annotations

import os
import random
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


def host_pids(marker: str) -> list[int]:
    """Host pids of the processes whose command line holds ``marker`` (a sandbox's own
    pids are those of its PID namespace, so the command cannot tell us its host pid)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline:
                found.append(int(entry))
    return found


def wait_gone(marker: str, deadline: float = 15.0) -> list[int]:
    """Poll until no process holds ``marker`` (generous: the machine may be busy); the
    pids still there when the deadline passes."""
    end = time.monotonic() + deadline
    while (left := host_pids(marker)) and time.monotonic() < end:
        time.sleep(0.05)
    return left


def sleeper(seconds: int = 300) -> tuple[str, str]:
    """``(shell words, marker)``: a ``sleep`` for a shell script, and the text only that
    sleep's command line holds (quotes split it in the script, and in secretd's argv)."""
    tag = str(random.randrange(10**6, 10**7))
    return f'sleep {seconds}.{tag[:3]}""{tag[3:]}', f"{seconds}.{tag}"


