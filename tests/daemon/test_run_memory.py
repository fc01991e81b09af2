"""A run whose client goes away (Ctrl-C, kill) gives back what it held once it ends: its
values and its output filter (``--redact``'s automaton, megabytes for long values). Its
stop timer used to keep the run alive in a reference cycle, 10 MB or more a run."""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import Daemon, World, client, wait_for

pytestmark = pytest.mark.root

NAMES = ("api_t1", "api_t2", "api_t3", "api_t4")
ROUNDS = 3


def vm_rss(pid: int) -> int:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return int(next(line for line in lines if line.startswith("VmRSS:")).split()[1])


@pytest.fixture
def texts(world: World) -> Iterator[Daemon]:
    """A daemon binding four 60 KB text secrets, each masked in every form."""
    bindings = []
    for name in NAMES:
        path = world.root / f"{name}.txt"
        path.write_text("\n".join(secrets.token_hex(32) for _ in range(920)))
        path.chmod(0o600)
        bindings.append(f'[secrets.{name}]\nsource = "file:{path.name}"\n')
    world.config.write_text(world.config.read_text() + "\n" + "\n".join(bindings))
    daemon = Daemon(world)
    daemon.start()
    yield daemon
    assert daemon.stop() == 0, daemon.logs()[-3000:]


def test_runs_whose_client_was_killed_give_their_memory_back(world: World, texts: Daemon) -> None:
    args = [arg for name in NAMES for arg in ("--secret", name)]
    warm = client(world, "run", "--redact", *args, "--", "true")
    assert warm.returncode == 0, warm.stderr
    baseline = vm_rss(texts.pid)
    ready = world.root / "ready"
    for _ in range(ROUNDS):
        ready.unlink(missing_ok=True)
        run = subprocess.Popen(
            [sys.executable, "-m", "secretd", "run", "--redact", *args, "--",
             "sh", "-c", f"touch {ready}; exec sleep 60"],
            env=world.env(SECRETD_HOST=world.host), cwd=world.root,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        wait_for(ready.exists, "the run to start")
        run.kill()  # the client goes away: the daemon stops the command
        run.communicate()
        wait_for(lambda: client(world, "ps", "-q").stdout == "", "the run to end")
    after = vm_rss(texts.pid)
    assert after <= baseline * 1.1 + 2048, (baseline, after)
