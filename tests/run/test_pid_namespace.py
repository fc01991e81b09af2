"""No process of a run outlives it: the sandbox is a PID namespace whose PID 1 is tini."""

from __future__ import annotations

import os
import pty
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.leftovers import mounted_anywhere

from .conftest import (
    host_pids,
    host_secretd_mounts,
    sleeper,
    start_run,
    wait_gone,
)

pytestmark = pytest.mark.root


def test_setsid_grandchild_ends_with_a_normal_run(secretd, tmp_path: Path) -> None:
    sleep, marker = sleeper()
    ready = tmp_path / "ready"
    script = (
        f"(setsid sh -c 'touch {ready}; exec {sleep}' > /dev/null 2>&1 &); "
        f"while [ ! -e {ready} ]; do sleep 0.02; done"
    )
    result = secretd("run", "--", "sh", "-c", script)
    assert result.returncode == 0, result.stderr
    assert wait_gone(marker) == [], "a setsid grandchild outlived the run"


def test_sigkill_of_secretd_ends_every_process_of_the_run(secret_file, tmp_path: Path) -> None:
    value = secret_file("kill-me")
    sleep, marker = sleeper()
    ready = tmp_path / "ready"
    secrets_dir = f"/run/secretd-pidns-{os.getpid()}"
    script = f"(setsid {sleep} &); (trap '' TERM HUP; {sleep}) & touch {ready}; {sleep}"
    args = ("--secrets-dir", secrets_dir, "--secret", f"k=file:{value}", "--", "sh", "-c", script)
    proc = start_run(ready, *args)
    try:
        assert len(wait_until_running(marker)) == 3
        assert len(mounted_anywhere(secrets_dir)) >= 4  # tini, sh and its sleeps
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert wait_gone(marker) == [], "processes of the run outlived secretd"
    assert mounted_anywhere(secrets_dir) == []
    assert host_secretd_mounts() == []


def wait_until_running(marker: str, count: int = 3) -> list[int]:
    wait_for(lambda: len(host_pids(marker)) >= count)
    return host_pids(marker)


def wait_for(condition: Callable[[], bool], deadline: float = 15.0) -> None:
    end = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def test_the_command_sees_only_its_own_processes(secretd) -> None:
    result = secretd(
        "run", "--", "sh", "-c", "cat /proc/1/comm; ls /proc | grep -c '^[0-9]*$'; ps -e | wc -l"
    )
    assert result.returncode == 0, result.stderr
    init, in_proc, ps_lines = result.stdout.split()
    assert init in ("tini", "tini-static")
    assert int(in_proc) <= 4  # tini, sh, ls, grep
    assert int(ps_lines) <= 5  # a header, tini, sh, ps, wc
    assert str(os.getpid()) not in result.stdout


def test_sigterm_to_secretd_stops_a_shell_and_its_child(tmp_path: Path) -> None:
    sleep, marker = sleeper(100)
    ready = tmp_path / "ready"
    proc = start_run(ready, "--", "sh", "-c", f"touch {ready}; {sleep}")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 143
    assert wait_gone(marker) == []


@pytest.mark.parametrize(("script", "status"), [("exit 7", 7), ("kill -TERM $$", 143)])
def test_status_is_the_commands_own_under_tini(secretd, script: str, status: int) -> None:
    result = secretd("run", "--", "sh", "-c", script)
    assert (result.returncode, result.stderr) == (status, "")


def test_missing_tini_is_one_line_naming_the_package(secretd, tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    marker = tmp_path / "started"
    result = secretd(
        "run", "--", "/usr/bin/touch", str(marker), env={**os.environ, "PATH": str(empty)}
    )
    assert result.returncode == 125
    assert result.stderr.count("\n") == 1
    assert "tini" in result.stderr and "apt-get install tini" in result.stderr
    assert not marker.exists()


def test_terminal_ctrl_c_reaches_the_command_once(tmp_path: Path) -> None:
    """With a terminal, the command (not tini, not secretd) is its foreground job."""
    ready, got = tmp_path / "ready", tmp_path / "got"
    script = f"trap 'echo INT >> {got}; exit 130' INT; touch {ready}; while :; do sleep 0.05; done"
    pid, terminal = pty.fork()  # secretd leads a session with this terminal, as in a shell
    if pid == 0:
        argv = [sys.executable, "-m", "secretd", "run", "--", "sh", "-c", script]
        os.execv(sys.executable, argv)
    try:
        wait_for(ready.exists)
        os.write(terminal, b"\x03")
        statuses: list[int] = []
        wait_for(lambda: _reaped(pid, statuses))
    finally:
        os.close(terminal)
    assert got.read_text() == "INT\n"
    assert statuses == [130]


def _reaped(pid: int, statuses: list[int]) -> bool:
    done, raw = os.waitpid(pid, os.WNOHANG)
    if done == pid:
        statuses.append(os.waitstatus_to_exitcode(raw))
    return bool(statuses)


def test_a_background_run_leaves_the_terminal_to_the_shell(tmp_path: Path) -> None:
    """tini hands the terminal to the command's group; not when secretd runs in the
    background (`secretd run ... &` from a shell), or the shell would lose its terminal."""
    ready = tmp_path / "ready"
    pid, terminal = pty.fork()  # the child plays the interactive shell
    if pid == 0:
        job = os.fork()
        if job == 0:
            os.setpgid(0, 0)  # a background job of that shell
            argv = [sys.executable, "-m", "secretd", "run", "--", "sh", "-c"]
            os.execv(sys.executable, [*argv, f"touch {ready}; sleep 2"])
        os._exit(os.waitstatus_to_exitcode(os.waitpid(job, 0)[1]))
    try:
        wait_for(ready.exists)
        assert os.tcgetpgrp(terminal) == pid, "the command took the terminal"
        statuses: list[int] = []
        wait_for(lambda: _reaped(pid, statuses))
    finally:
        os.close(terminal)
    assert statuses == [0]
