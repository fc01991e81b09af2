"""Rotation through a real daemon: ``secretd secret rotate`` reaches every run using the
secret at once, ``--notify`` re-reads a provider's new value, and ``secretd ps`` shows a
run whose provider fails as stale."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon.conftest import CANARY, Daemon, World, client
from tests.rotation.conftest import Follower, reporter, settle
from tests.support.waiting import wait_for

pytestmark = pytest.mark.root


@pytest.fixture
def runs(world: World) -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.terminate()
        proc.communicate(timeout=30)


def start(world: World, runs: list[subprocess.Popen[str]], *args: str) -> None:
    command = [sys.executable, "-m", "secretd", "run", *args]
    env = world.env(SECRETD_HOST=world.host)
    runs.append(
        subprocess.Popen(
            command,
            cwd=world.root,
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )  # fmt: skip
    )


def test_secret_rotate_reaches_every_running_command_at_once(
    world: World,
    daemon: Daemon,
    runs: list[subprocess.Popen[str]],
    tmp_path: Path,
) -> None:
    assert client(world, "secret", "create", "api_token", "-", input="value-1").returncode == 0
    followers = [Follower(tmp_path / f"seen{i}.log") for i in range(2)]
    for follower in followers:
        script = reporter(follower.log, "/run/secrets/api_token")
        start(world, runs, "--secret", "api_token", "--", "sh", "-c", script)
        follower.wait_value("value-1")
    rotated = client(world, "secret", "rotate", "api_token", "-", input="value-2")
    assert rotated.returncode == 0, rotated.stderr
    for follower in followers:  # no refresh interval: the daemon told them
        follower.wait_value("value-2", timeout=30)
    assert "value-2" not in daemon.logs()


def test_notify_makes_runs_read_a_providers_new_value(
    world: World,
    daemon: Daemon,
    runs: list[subprocess.Popen[str]],
    tmp_path: Path,
) -> None:
    follower = Follower(tmp_path / "seen.log")
    start(world, runs, "--secret", "api_key", "--", "sh", "-c", reporter(follower.log))
    follower.wait_value(CANARY)
    (world.root / "api_key.txt").write_text("fresh-value")
    told = client(world, "secret", "rotate", "--notify", "api_key")
    assert (told.returncode, told.stdout) == (0, "api_key: 1 runs notified\n"), told.stderr
    follower.wait_value("fresh-value", timeout=30)


def test_a_failing_provider_shows_stale_in_ps_and_recovers(
    world: World,
    daemon: Daemon,
    runs: list[subprocess.Popen[str]],
    tmp_path: Path,
) -> None:
    follower = Follower(tmp_path / "seen.log")
    start(
        world, runs, "--secret", "source=api_key,refresh=1s", "--", "sh", "-c",
        reporter(follower.log),
    )  # fmt: skip
    follower.wait_value(CANARY)
    source = world.root / "api_key.txt"
    source.rename(world.root / "away.txt")
    wait_for(lambda: "stale since" in client(world, "ps").stdout, "ps to show the run as stale", 30)
    settle(1)
    assert follower.values() == [CANARY]  # the last good file stays
    source.write_text("after-recovery")
    source.chmod(0o600)
    follower.wait_value("after-recovery", timeout=20)
    wait_for(lambda: "stale" not in client(world, "ps").stdout, "ps to drop stale", 30)
    failures = [e for e in daemon.events() if "refreshing api_key failed" in str(e["msg"])]
    assert len(failures) == 1


def test_rotation_flags_the_daemon_refuses(world: World, daemon: Daemon) -> None:
    done = client(world, "run", "--on-change", "exec:touch /tmp/x", "--secret", "api_key",
                  "--", "true", user=65534)  # fmt: skip
    assert done.returncode != 0
    assert "--on-change exec: would run its command as the daemon's user" in done.stderr


def test_notify_is_for_names_the_callers_policy_grants(world: World, daemon: Daemon) -> None:
    refused = client(world, "secret", "rotate", "--notify", "db_password", user=65534)
    assert refused.returncode != 0
    assert "db_password" in refused.stderr and refused.stdout == ""
    allowed = client(world, "secret", "rotate", "--notify", "api_key", user=65534)
    assert (allowed.returncode, allowed.stdout) == (0, "api_key: 0 runs notified\n")


def test_restart_through_the_daemon_starts_the_command_again_once(
    world: World, daemon: Daemon, runs: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    assert client(world, "secret", "create", "api_token", "-", input="restart-1").returncode == 0
    follower = Follower(tmp_path / "seen.log")
    script = reporter(follower.log, "/run/secrets/api_token")
    start(world, runs, "--on-change", "restart", "--secret", "api_token", "--", "sh", "-c", script)
    follower.wait_value("restart-1")
    assert client(world, "secret", "rotate", "api_token", "-", input="restart-2").returncode == 0
    follower.wait_value("restart-2", timeout=30)
    settle(1)
    assert follower.lines().count("start") == 2
    assert len(client(world, "ps", "-q").stdout.split()) == 1  # one run, its command anew
