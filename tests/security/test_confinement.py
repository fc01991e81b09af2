"""A second local user cannot reach another user's secrets: not through /proc/<pid>/root of
a running ``secretd run``, not through the daemon, not through the store's files, not
through a socket posing as the daemon. ``nobody`` attacks; values must never show."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import (
    CANARY,
    DB_PASSWORD,
    NOBODY,
    Daemon,
    Impostor,
    Victim,
    World,
    as_user,
    client,
    popen_as,
    start_impostor,
    wait_for,
)

pytestmark = pytest.mark.root

VICTIM_VALUE = "victim-only-7c1f9b"
PEEKS = (
    "cat /proc/{pid}/root/run/secrets/{name}",
    "ls /proc/{pid}/root/run/secrets",
    "cat /proc/{pid}/environ",
    "ls -l /proc/{pid}/fd",
    "cat /proc/{pid}/fd/3",
    "cat /proc/{pid}/cwd/../../run/secrets/{name}",
    "cat /proc/{pid}/mem",
)


def peek_as(uid: int, pid: int, name: str) -> list[subprocess.CompletedProcess[str]]:
    """Every way the attacker tries to read a running command's secrets from outside."""
    return [
        as_user(uid, ["sh", "-c", peek.format(pid=pid, name=name)], {"PATH": "/usr/bin:/bin"})
        for peek in PEEKS
    ]


def assert_sealed(results: list[subprocess.CompletedProcess[str]], *values: str) -> None:
    for result in results:
        assert result.returncode != 0, result.args
        for value in values:
            assert value not in result.stdout + result.stderr, result.args


_serial = itertools.count()


def holder() -> tuple[list[str], str]:
    """A command holding its secrets for a minute, found by its unique argument (a PID
    namespace hides its host pid from it)."""
    token = f"60.{os.getpid()}{next(_serial)}"
    return ["--", "sleep", token], token


def wait_pid(token: str) -> int:
    """The host pid of ``sleep TOKEN``."""
    wanted = f"sleep\0{token}\0".encode()

    def find() -> int | None:
        for entry in os.listdir("/proc"):
            try:
                if entry.isdigit() and Path(f"/proc/{entry}/cmdline").read_bytes() == wanted:
                    return int(entry)
            except OSError:
                continue
        return None

    wait_for(lambda: find() is not None, "the command to start")
    found = find()
    assert found is not None
    return found


@pytest.fixture
def running() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        proc.kill()
        proc.communicate()


def test_a_root_run_through_the_daemon_is_sealed_from_proc(
    world: World, daemon: Daemon, running: list[subprocess.Popen[str]]
) -> None:
    command, token = holder()
    running.append(
        subprocess.Popen(
            [sys.executable, "-m", "secretd", "run", "--secret", "db_password", *command],
            cwd=world.root,
            env=world.env(SECRETD_HOST=world.host),
            text=True,
        )  # fmt: skip
    )
    pid = wait_pid(token)
    assert Path(f"/proc/{pid}/root/run/secrets/db_password").read_text() == DB_PASSWORD
    assert_sealed(peek_as(NOBODY, pid, "db_password"), DB_PASSWORD)


def test_nobodys_run_is_sealed_from_another_user(
    world: World, daemon: Daemon, running: list[subprocess.Popen[str]], victim: Victim
) -> None:
    """The daemon runs nobody's command as nobody: a third user still sees nothing."""
    command, token = holder()
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "SECRETD_HOST": world.host}
    argv = [sys.executable, "-m", "secretd", "run", "--secret", "api_key", *command]
    running.append(popen_as(NOBODY, argv, env, cwd=world.root))
    pid = wait_pid(token)
    assert_sealed(peek_as(victim.uid, pid, "api_key"), CANARY)


def test_an_in_process_run_of_a_user_is_sealed_from_another(
    victim: Victim, running: list[subprocess.Popen[str]]
) -> None:
    value = victim.home / "value"
    value.write_text(VICTIM_VALUE)
    value.chmod(0o600)
    os.chown(value, victim.uid, victim.uid)
    command, token = holder()
    argv = [sys.executable, "-m", "secretd", "run", "--secret", f"k=file:{value}", *command]
    running.append(popen_as(victim.uid, argv, victim.env(), cwd=victim.home))
    pid = wait_pid(token)
    assert Path(f"/proc/{pid}/root/run/secrets/k").read_text() == VICTIM_VALUE
    assert_sealed(peek_as(NOBODY, pid, "k"), VICTIM_VALUE)


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--secret", "db_password", "--", "cat", "/run/secrets/db_password"],
        ["run", "--secret", "x=local:db_password", "--", "cat", "/run/secrets/x"],
        ["run", "--secret", "x=file:db_password.txt", "--", "cat", "/run/secrets/x"],
        ["run", "--secret", "x=file:/etc/shadow", "--", "cat", "/run/secrets/x"],
        ["run", "--secrets-dir", "/tmp", "--secret", "api_key", "--", "true"],
        ["run", "--user", "0", "--secret", "api_key", "--", "cat", "/run/secrets/api_key"],
        ["secret", "inspect", "db_password"],
        ["secret", "create", "api_key", "-"],
        ["secret", "rm", "api_key"],
    ],
)
def test_the_daemon_gives_nobody_what_the_policy_does_not(
    world: World, daemon: Daemon, args: list[str]
) -> None:
    result = client(world, *args, user=NOBODY, input="overwritten")
    assert result.returncode != 0, result.stdout
    out = result.stdout + result.stderr
    assert DB_PASSWORD not in out and "root:" not in out
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert (world.root / "api_key.txt").read_text() == CANARY


def test_the_store_files_are_closed_to_another_user(
    world: World, daemon: Daemon, victim: Victim
) -> None:
    created = client(world, "secret", "create", "stored", "-", input=DB_PASSWORD)
    assert created.returncode == 0, created.stderr
    mine = victim.secretd("secret", "create", "mine", "-", input=VICTIM_VALUE)
    assert mine.returncode == 0, mine.stderr
    targets = [*world.state.rglob("*"), world.state, *(victim.home / "state").rglob("*")]
    assert len(targets) > 2
    for target in targets:
        tried = as_user(NOBODY, ["cat", str(target)], {"PATH": "/usr/bin:/bin"})
        assert tried.returncode != 0
        assert DB_PASSWORD not in tried.stdout and VICTIM_VALUE not in tried.stdout
    listed = as_user(NOBODY, ["ls", str(world.state)], {"PATH": "/usr/bin:/bin"})
    assert "Permission denied" in listed.stderr


def test_a_spoofed_socket_gets_nothing_of_a_run(
    victim: Victim, attacker_dir: Path, impostors: list[Impostor]
) -> None:
    impostor = start_impostor(victim.runtime / "secretd.sock", attacker_dir)
    impostors.append(impostor)
    value = victim.home / "value"
    value.write_text(VICTIM_VALUE)
    os.chown(value, victim.uid, victim.uid)
    value.chmod(0o600)
    ran = victim.secretd("run", "--secret", f"k=file:{value}", "-e", "MODE=x", "--", "cat",
                         "/run/secrets/k")  # fmt: skip
    assert (ran.returncode, ran.stdout) == (0, VICTIM_VALUE), ran.stderr
    assert impostor.report() == {"connections": 0, "bytes": 0, "fds": 0}
