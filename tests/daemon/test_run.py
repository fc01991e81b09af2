"""`secretd run` through the daemon behaves as in-process: files, modes, exit codes, stdio."""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
import time

import pytest

from .conftest import CANARY, Daemon, World, client, wait_for

pytestmark = pytest.mark.root

SHOW = (
    "pwd; cd /run/secrets && for f in *; do stat -c '%n %a %u %g %s' \"$f\"; done; "
    'awk \'$5 == "/run/secrets" { i = 7; while ($i != "-") i++; print $6, $(i+1) }\' '
    "/proc/self/mountinfo; cat api_key; exit 3"
)


def runs_in_log(daemon: Daemon) -> int:
    return sum(
        1 for e in daemon.events() if str(e["msg"]).startswith("run ") and " for " in str(e["msg"])
    )


def test_same_files_modes_and_status_as_in_process(world: World, daemon: Daemon) -> None:
    refs = ["--secret", "api_key", "--secret", "source=db_password,target=db,mode=0400,uid=1000"]
    local = client(world, "run", "--no-daemon", *refs, "--", "sh", "-c", SHOW)
    remote = client(world, "run", *refs, "--", "sh", "-c", SHOW)
    assert (remote.returncode, remote.stdout, remote.stderr) == (
        local.returncode,
        local.stdout,
        local.stderr,
    )
    assert remote.returncode == 3
    assert remote.stdout.splitlines() == [
        str(world.root),  # the command starts in the client's directory
        "api_key 444 0 0 20",
        "db 400 1000 0 12",
        "ro,nosuid,nodev,noexec,relatime tmpfs",
        CANARY,
    ]
    assert runs_in_log(daemon) == 1


@pytest.mark.parametrize(
    ("command", "status", "stderr"),
    [
        (["true"], 0, ""),
        (["sh", "-c", "exit 7"], 7, ""),
        (
            ["no-such-command-xyz"],
            127,
            "secretd: cannot run 'no-such-command-xyz': command not found",
        ),
        (["./api_key.txt"], 126, "secretd: cannot run './api_key.txt': Permission denied"),
        (["sh", "-c", "kill -TERM $$"], 143, ""),
    ],
)
def test_exit_codes_match(
    world: World, daemon: Daemon, command: list[str], status: int, stderr: str
) -> None:
    local = client(world, "run", "--no-daemon", "--", *command)
    remote = client(world, "run", "--", *command)
    assert (local.returncode, remote.returncode) == (status, status)
    assert remote.stderr == local.stderr
    assert remote.stderr.startswith(stderr)


def test_unresolvable_secret_fails_125_before_starting(world: World, daemon: Daemon) -> None:
    (world.root / "db_password.txt").unlink()
    marker = world.root / "started"
    result = client(world, "run", "--secret", "db_password", "--", "touch", str(marker))
    assert result.returncode == 125
    assert result.stderr.startswith("secretd: secret 'db_password': file ")
    assert not marker.exists()


def test_stdin_is_piped(world: World, daemon: Daemon) -> None:
    result = client(world, "run", "--", "cat", input="x\nline two\n")
    assert (result.returncode, result.stdout) == (0, "x\nline two\n")
    assert runs_in_log(daemon) == 1


def test_a_terminal_reaches_the_command(world: World, daemon: Daemon) -> None:
    inner = [sys.executable, "-m", "secretd", "run", "--secret", "api_key", "--", "sh", "-c"]
    script = "test -t 0 && test -t 1 && echo on-a-tty; cat /run/secrets/api_key"
    line = shlex.join([*inner, script])
    result = subprocess.run(
        ["script", "-qec", line, "/dev/null"],
        cwd=world.root,
        env=world.env(SECRETD_HOST=world.host),
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "on-a-tty" in result.stdout and CANARY in result.stdout
    assert runs_in_log(daemon) == 1


def test_ps_shows_a_run_and_ctrl_c_reaches_the_command(world: World, daemon: Daemon) -> None:
    ready = world.root / "ready"
    proc = subprocess.Popen(
        [sys.executable, "-m", "secretd", "run", "--name", "sleeper", "--secret", "api_key"]
        + ["--", "sh", "-c", f"touch {ready}; exec sleep 30"],
        cwd=world.root,
        env=world.env(SECRETD_HOST=world.host),
    )
    wait_for(ready.exists, "the command to start")
    listed = client(world, "ps", "--format", "json")
    (run,) = json.loads(listed.stdout)
    assert (run["name"], run["user"], run["secrets"], run["state"]) == (
        "sleeper",
        "root",
        ["api_key"],
        "running",
    )
    table = client(world, "ps").stdout.splitlines()
    assert table[0].split() == ["ID", "NAME", "IMAGE", "COMMAND", "STATUS", "SECRETS", "USER"]
    assert table[1].split()[:3] == [run["id"], "sleeper", "(host)"]
    assert table[1].split()[-2:] == ["api_key", "root"]
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)  # what the terminal sends on Ctrl-C
    assert proc.wait(10) == 130
    assert time.monotonic() - started < 2
    assert client(world, "ps", "-q").stdout == ""


def test_signals_and_resizes_are_relayed(world: World, daemon: Daemon) -> None:
    ready, got = world.root / "ready", world.root / "got"
    script = (
        f"trap 'echo WINCH >> {got}' WINCH; trap 'echo USR1 >> {got}; exit 5' USR1; "
        f"touch {ready}; while :; do sleep 0.05; done"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "secretd", "run", "--", "sh", "-c", script],
        cwd=world.root,
        env=world.env(SECRETD_HOST=world.host),
    )
    wait_for(ready.exists, "the command to start")

    def resized() -> bool:
        """The command can start before the client has read the daemon's "started", and
        until then the client relays no resize: resize again until one arrives; from then
        on the client relays, and USR1 must reach the command."""
        if got.exists():
            return True
        proc.send_signal(signal.SIGWINCH)  # what the terminal sends its foreground on a resize
        return False

    wait_for(resized, "the resize to arrive")
    assert set(got.read_text().splitlines()) == {"WINCH"}
    proc.send_signal(signal.SIGUSR1)
    assert proc.wait(10) == 5
    assert got.read_text().splitlines()[-1] == "USR1"


def test_stop_ends_a_daemon_run(world: World, daemon: Daemon) -> None:
    ready = world.root / "ready"
    proc = subprocess.Popen(
        [sys.executable, "-m", "secretd", "run", "--name", "stoppable", "--secret", "api_key"]
        + ["--", "sh", "-c", f"touch {ready}; exec sleep 30"],
        cwd=world.root,
        env=world.env(SECRETD_HOST=world.host),
    )
    wait_for(ready.exists, "the command to start")
    stopped = client(world, "stop", "stoppable")
    assert (stopped.returncode, stopped.stdout) == (0, "stoppable\n")
    assert proc.wait(10) == 143
    assert client(world, "ps", "-q").stdout == ""


def test_stop_of_an_unknown_id_is_a_usage_error(world: World, daemon: Daemon) -> None:
    result = client(world, "stop", "nothing-like-this")
    assert result.returncode == 2
    assert result.stderr.startswith("secretd: no run 'nothing-like-this' of yours is running")
