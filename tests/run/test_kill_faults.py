"""SIGKILL of secretd at random points of a run: before the mount, after it, while the
command runs, during clean-up. After each, nothing of the run is left: no process, no
mount in any namespace, no secret value on disk."""

from __future__ import annotations

import os
import random
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.leftovers import mounted_anywhere

from .conftest import host_secretd_mounts, sleeper, wait_gone

pytestmark = pytest.mark.root

ROUNDS = 8
BUDGET = 15.0  # seconds of killing, in all


def files_holding(value: bytes, *places: Path) -> list[str]:
    """Regular files under ``places`` whose bytes contain ``value`` (grep: no devices,
    no FIFOs, no symlinks followed)."""
    found = subprocess.run(
        ["grep", "-r", "-l", "-F", "-s", "-D", "skip", value.decode(), *map(str, places)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return found.stdout.splitlines()


def test_sigkill_at_random_points_leaves_nothing(
    clean_environ: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    canary = f"kill-canary-{secrets.token_hex(12)}"
    monkeypatch.setenv("KILL_CANARY", canary)
    secrets_dir = f"/run/secretd-kill-{secrets.token_hex(4)}"
    rng = random.Random(os.environ.get("SECRETD_FAULT_SEED"))
    started = time.monotonic()
    rounds = 0
    while rounds < ROUNDS and time.monotonic() - started < BUDGET:
        rounds += 1
        token = secrets.token_hex(6)
        orphan, marker = sleeper(300)
        # The command ends on its own after a second, so kills land in clean-up too.
        script = f": {token}; cat {secrets_dir}/c > /dev/null; (setsid {orphan} &); sleep 1"
        proc = subprocess.Popen(
            [sys.executable, "-m", "secretd", "run", "--secrets-dir", secrets_dir]
            + ["--secret", "c=env:KILL_CANARY", "--", "sh", "-c", script],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.0, 1.4))  # start-up is ~0.3 s here, the command 1 s
        proc.kill()
        proc.wait(timeout=10)
        assert wait_gone(token) == [] and wait_gone(marker) == [], f"round {rounds}"
        assert mounted_anywhere(secrets_dir) == [], f"round {rounds}"
        assert host_secretd_mounts() == [], f"round {rounds}"
    assert rounds >= 3
    places = (clean_environ["state"], clean_environ["runtime"], Path("/tmp"))
    assert files_holding(canary.encode(), *[p for p in places if p.exists()]) == []
    mounts = clean_environ["runtime"] / "mounts"
    assert not mounts.exists() or not any(mounts.iterdir())
    assert not Path(secrets_dir).exists()
