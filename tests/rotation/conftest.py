"""Helpers for rotation tests: a store with a passphrase, and a command that reports what
it reads, when, and which signals it got, into a log the test follows."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.daemon.conftest import Daemon, World, daemon, world  # noqa: F401 - fixtures
from tests.support.waiting import wait_for
from tests.vault.conftest import openbao  # noqa: F401 - fixture
from tests.vault.servers import ROOT_TOKEN, BaoServer

PASSPHRASE = "rotation-test-pass"


@pytest.fixture
def store_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment a ``secretd`` subprocess needs to read the test's local store."""
    monkeypatch.setenv("SECRETD_PASSPHRASE", PASSPHRASE)
    return dict(os.environ)


def reporter(log: Path, target: str = "/run/secrets/api_key", period: float = 0.1) -> str:
    """A shell loop that appends ``<value> <inode>`` whenever the file's value or inode
    changes, and ``HUP`` for each SIGHUP it gets (first line: ``start``). SIGTERM ends it
    (a container's PID 1 ignores a signal it has no handler for).

    A look during which a SIGHUP came is not recorded: the sandbox's tini relays a signal
    to the whole process group (``-g``), so it also kills the ``cat`` or ``stat`` the loop
    was running, and the half-made line would read as a value the file never had."""
    return (
        f'echo start >> {log}; trap "echo HUP >> {log}; hup=1" HUP; trap "exit 0" TERM; '
        f'last=""; while :; do hup=0; now="$(cat {target}) $(stat -c %i {target})"; '
        f'if [ $hup = 0 ] && [ "$now" != "$last" ]; then echo "$now" >> {log}; last="$now"; fi; '
        f"sleep {period}; done"
    )


class Follower:
    """The lines a reporter wrote so far."""

    def __init__(self, log: Path) -> None:
        self.log = log

    def lines(self) -> list[str]:
        try:
            return self.log.read_text().splitlines()
        except FileNotFoundError:
            return []

    def values(self) -> list[str]:
        return [line.split()[0] for line in self.lines() if line not in ("start", "HUP")]

    def wait_value(self, value: str, timeout: float = 30) -> None:
        wait_for(lambda: value in self.values(), f"{value!r} in {self.lines()}", timeout)


@pytest.fixture
def background() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start ``secretd ARGS`` in the background; stopped (SIGTERM) at the end."""
    procs: list[subprocess.Popen[str]] = []

    def start(*args: str, **kwargs: object) -> subprocess.Popen[str]:
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        proc = subprocess.Popen([sys.executable, "-m", "secretd", *args], text=True, **kwargs)  # type: ignore[call-overload]
        procs.append(proc)
        return proc  # type: ignore[no-any-return]

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def runtime_mounts(clean_environ: dict[str, Path]) -> list[str]:
    """Mount points under this test's runtime directory."""
    base = str(clean_environ["runtime"])
    with open("/proc/self/mounts") as fh:
        return [line.split()[1] for line in fh if line.split()[1].startswith(base)]


def settle(seconds: float) -> None:
    """Give a run time in which nothing should happen (no write, no signal)."""
    time.sleep(seconds)


class DebugLog:
    """A run's stderr at ``--log-level debug``, in a file: tests wait for what it logs
    (a poll that found the same content) instead of sleeping through a poll interval."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = path.open("w")
        self.args = ("--log-level", "debug")

    def text(self) -> str:
        return self.path.read_text()

    def wait(self, text: str, count: int = 1, timeout: float = 30) -> None:
        wait_for(lambda: self.text().count(text) >= count, f"{text!r} in the run's log", timeout)


@pytest.fixture
def debug_log(tmp_path: Path) -> Iterator[DebugLog]:
    made = DebugLog(tmp_path / "run.log")
    yield made
    made.file.close()


@pytest.fixture
def bao_daemon(world: World, openbao: BaoServer) -> Iterator[Daemon]:  # noqa: F811
    """A daemon whose config also reaches the session's OpenBao and watches Docker's
    destroy events."""
    text = world.config.read_text().replace("engines = []", 'engines = ["docker"]')
    text += f'\n[providers.vault]\naddress = "{openbao.address}"\ntoken = "{ROOT_TOKEN}"\n'
    world.config.write_text(text)
    started = Daemon(world)
    started.start()
    yield started
    if started.proc is not None and started.proc.poll() is None:
        started.stop()
