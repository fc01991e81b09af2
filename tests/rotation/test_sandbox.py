"""Rotation into a running sandbox command, in-process (no daemon): a new store version
reaches the command within one refresh interval, an unchanged value is never rewritten,
``--on-change`` acts once per change, a failing provider keeps the last good files."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.rotation.conftest import DebugLog, Follower, reporter, settle
from tests.support.waiting import wait_for

pytestmark = pytest.mark.root

Start = Callable[..., subprocess.Popen[str]]


def create(secretd: Callable[..., subprocess.CompletedProcess[str]], value: str) -> None:
    done = secretd("secret", "create", "api_key", "-", input=value)
    assert done.returncode == 0, done.stderr


def rotate(secretd: Callable[..., subprocess.CompletedProcess[str]], value: str) -> None:
    done = secretd("secret", "rotate", "api_key", "-", input=value)
    assert done.returncode == 0, done.stderr


@pytest.fixture
def follower(tmp_path: Path) -> Follower:
    return Follower(tmp_path / "seen.log")


def test_a_new_version_reaches_the_command_and_signals_it_once(
    secretd, store_env, background: Start, follower: Follower, debug_log: DebugLog
) -> None:
    create(secretd, "v1")
    run = background(
        *debug_log.args, "run", "--no-daemon", "--on-change", "signal:HUP",
        "--secret", "source=api_key,refresh=1s", "--", "sh", "-c", reporter(follower.log),
        stderr=debug_log.file,
    )  # fmt: skip
    follower.wait_value("v1")
    rotate(secretd, "v2")
    follower.wait_value("v2", timeout=30)
    first = [line for line in follower.lines() if line.startswith("v1")][0].split()[1]
    second = [line for line in follower.lines() if line.startswith("v2")][0].split()[1]
    assert first != second  # a new file took the name: renamed into place
    wait_for(lambda: follower.lines().count("HUP") == 1, f"one HUP in {follower.lines()}")
    rotate(secretd, "v2")  # a new version with the same content
    debug_log.wait("same content: nothing to do")
    settle(0.5)  # what a write would have been followed by
    assert follower.lines().count("HUP") == 1
    assert [v for v in follower.values() if v == "v2"] == ["v2"]  # same inode: never rewritten
    assert run.poll() is None


def test_restart_starts_the_command_again_once_with_the_new_files(
    secretd, store_env, background: Start, follower: Follower
) -> None:
    create(secretd, "v1")
    background(
        "run", "--no-daemon", "--on-change", "restart", "--stop-timeout", "5",
        "--refresh", "1s", "--secret", "api_key", "--", "sh", "-c", reporter(follower.log),
    )  # fmt: skip
    follower.wait_value("v1")
    rotate(secretd, "v2")
    follower.wait_value("v2", timeout=30)
    settle(2)
    assert follower.lines().count("start") == 2


def test_restart_keeps_the_exit_status_of_the_last_command(
    secretd, store_env, background: Start, tmp_path: Path
) -> None:
    create(secretd, "v1")
    started = tmp_path / "started"
    script = (
        f'echo x >> {started}; trap "exit 0" TERM; '
        'while [ "$(cat /run/secrets/api_key)" = v1 ]; do sleep 0.1; done; sleep 0.5; exit 7'
    )
    run = background(
        "run", "--no-daemon", "--on-change", "restart", "--refresh", "1s", "--secret", "api_key",
        "--", "sh", "-c", script,
    )  # fmt: skip
    wait_for(started.exists, "the command to start")
    rotate(secretd, "v2")
    assert run.wait(90) == 7
    assert started.read_text().count("x") == 2


def test_a_failing_provider_keeps_the_old_files_and_recovers(
    background: Start, follower: Follower, tmp_path: Path
) -> None:
    source = tmp_path / "api_key.txt"
    source.write_text("v1")
    run = background(
        "run", "--no-daemon", "--secret", f"source=file:{source},target=api_key,refresh=1s",
        "--", "sh", "-c", reporter(follower.log),
    )  # fmt: skip
    follower.wait_value("v1")
    source.unlink()  # the provider now fails
    settle(3)
    assert follower.values() == ["v1"]
    source.write_text("v2")
    follower.wait_value("v2", timeout=30)
    run.terminate()
    _, err = run.communicate(timeout=60)
    assert err.count("refreshing api_key failed") == 1  # logged once, not once per retry
    assert "v1" not in err and "v2" not in err


@pytest.mark.fuse
def test_a_fuse_mount_serves_the_new_version_at_the_next_open(
    secretd, store_env, background: Start, follower: Follower
) -> None:
    create(secretd, "fuse-one")
    background(
        "run", "--no-daemon", "--mount-type", "fuse", "--secret", "source=api_key,refresh=1s",
        "--", "sh", "-c", reporter(follower.log),
    )  # fmt: skip
    follower.wait_value("fuse-one")
    rotate(secretd, "fuse-two")
    follower.wait_value("fuse-two", timeout=30)


def test_exec_runs_the_hook_once_per_change_with_the_names(
    secretd, store_env, background: Start, follower: Follower, tmp_path: Path
) -> None:
    create(secretd, "e1")
    hook = tmp_path / "hook.log"
    background(
        "run", "--no-daemon", "--on-change", f'exec:echo "changed $SECRETD_CHANGED" >> {hook}',
        "--refresh", "1s", "--secret", "api_key", "--", "sh", "-c", reporter(follower.log),
    )  # fmt: skip
    follower.wait_value("e1")
    rotate(secretd, "e2")
    follower.wait_value("e2", timeout=30)
    wait_for(hook.exists, "the hook to run")
    settle(1.5)
    assert hook.read_text() == "changed api_key\n"


def test_two_secrets_rotated_one_after_the_other_give_one_action(
    secretd, store_env, background: Start, tmp_path: Path
) -> None:
    from secretd.config import load_config
    from secretd.store import LocalStore

    create(secretd, "key-1")
    assert secretd("secret", "create", "db_password", "-", input="pw-1").returncode == 0
    log = tmp_path / "pairs.log"
    script = (
        f'trap "echo HUP >> {log}" HUP; trap "exit 0" TERM; last=""; while :; do '
        'now="$(cat /run/secrets/api_key) $(cat /run/secrets/db_password)"; '
        f'[ "$now" != "$last" ] && echo "$now" >> {log}; last="$now"; sleep 0.05; done'
    )
    background(
        "run", "--no-daemon", "--on-change", "signal:HUP", "--refresh", "1s",
        "--secret", "api_key", "--secret", "db_password", "--", "sh", "-c", script,
    )  # fmt: skip
    wait_for(lambda: log.exists() and "key-1 pw-1" in log.read_text(), "the first pair")
    store = LocalStore.from_config(load_config())
    store.rotate("api_key", b"key-2")
    time.sleep(0.3)  # a rotation in two steps, as a script writing one secret after another
    store.rotate("db_password", b"pw-2")
    wait_for(lambda: "HUP" in log.read_text(), "the signal", 30)
    settle(2.5)
    lines = log.read_text().splitlines()
    assert lines.count("HUP") == 1, lines
    assert "key-2 pw-2" in lines, lines
