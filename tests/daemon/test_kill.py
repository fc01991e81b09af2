"""The daemon dies or stops mid-run: nothing of the run survives, and the client says so."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import Daemon, World, mounts_at, wait_for

pytestmark = pytest.mark.root


def start_run(world: World, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "secretd", "run", *args],
        cwd=world.root, env=world.env(SECRETD_HOST=world.host),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def pids_of(*argv: str) -> list[int]:
    """Host pids whose command line is exactly ``argv``."""
    wanted = ("\0".join(argv) + "\0").encode()
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and Path(f"/proc/{entry}/cmdline").read_bytes() == wanted:
                found.append(int(entry))
        except OSError:
            continue
    return found


def test_sigkill_of_the_daemon_takes_every_process_of_the_run_with_it(
    world: World, daemon: Daemon
) -> None:
    """A background child and a ``setsid`` one, not only the command, and the mount."""
    tag = f"{os.getpid()}{time.monotonic_ns() % 1000}"
    sleeps = [("sleep", f"61.{tag}"), ("sleep", f"62.{tag}"), ("sleep", f"63.{tag}")]
    script = f"sleep 61.{tag} & setsid sleep 62.{tag} & exec sleep 63.{tag}"
    secrets_dir = f"/run/secretd-test-{tag}-kill"
    proc = start_run(world, "--secrets-dir", secrets_dir, "--secret", "api_key", "--",
                     "sh", "-c", script)  # fmt: skip
    wait_for(lambda: all(pids_of(*argv) for argv in sleeps), "the run's three processes")
    assert mounts_at(secrets_dir)
    daemon.kill()
    wait_for(
        lambda: not any(pids_of(*argv) for argv in sleeps) and not mounts_at(secrets_dir),
        "every process of the run and its mount to go",
        timeout=5,
    )
    _, err = proc.communicate(timeout=10)
    assert (proc.returncode, err) == (
        125,
        "secretd: the secretd daemon closed the connection before the command ended: "
        "see the daemon's log\n",
    )
    assert not Path(secrets_dir).exists()


@pytest.mark.parametrize("args", [["secret", "create", "k", "-"], ["ps"]])
def test_a_daemon_killed_before_it_answers_is_one_line(
    world: World, daemon: Daemon, args: list[str]
) -> None:
    """Stopped, the daemon leaves the request unread; killed, it never answers."""
    os.kill(daemon.pid, signal.SIGSTOP)
    proc = subprocess.Popen(
        [sys.executable, "-m", "secretd", *args],
        cwd=world.root, env=world.env(SECRETD_HOST=world.host),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("value")
    proc.stdin.close()
    time.sleep(1)  # the client has sent its request and waits for the answer
    daemon.kill()
    proc.wait(30)
    proc.stdout.close()
    assert proc.stderr is not None
    with proc.stderr:
        err = proc.stderr.read()
    assert (proc.returncode, err) == (
        125,
        "secretd: the secretd daemon closed the connection before answering: "
        "see the daemon's log\n",
    )
