"""Load, dying clients, a dying daemon and hostile frames: nothing leaks, nothing survives."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from secretd import protocol

from .conftest import CANARY, Daemon, World, call, client, mounts_at, ping, wait_for

pytestmark = pytest.mark.root


def start_client(world: World, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "secretd", "run", *args],
        cwd=world.root,
        env=world.env(SECRETD_HOST=world.host),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def sleeper(world: World, secrets_dir: str) -> tuple[subprocess.Popen[str], list[int]]:
    """A run whose command sleeps; returns once it is running, with the host pids of the
    run's processes (its tini and the command: only their namespace has the mount)."""
    ready = world.root / "ready"
    script = f"touch {ready}; exec sleep 60"
    proc = start_client(
        world, "--secrets-dir", secrets_dir, "--secret", "api_key", "--", "sh", "-c", script
    )
    wait_for(ready.exists, "the command to start")
    pids = mounts_at(secrets_dir)
    assert len(pids) == 2, pids
    return proc, pids


def gone(pids: list[int]) -> bool:
    return not any(Path(f"/proc/{pid}").exists() for pid in pids)


def test_fifty_concurrent_runs_leak_nothing(world: World, daemon: Daemon) -> None:
    assert client(world, "run", "--secret", "api_key", "--", "true").returncode == 0
    baseline = daemon.idle_fds()
    # a directory of this test's own: other tests' runs on the machine mount /run/secrets too
    secrets_dir = f"/run/secretd-test-{os.getpid()}-fifty"
    procs = [
        start_client(
            world,
            "--secret",
            "api_key",
            "--secrets-dir",
            secrets_dir,
            "--",
            "sh",
            "-c",
            f'printf "%s:%s\\n" "$(cat {secrets_dir}/api_key)" "$1"',
            "_",
            str(n),
        )
        for n in range(50)
    ]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    assert [p.returncode for p in procs] == [0] * 50, [err for _, err in outputs if err][:3]
    assert [out for out, _ in outputs] == [f"{CANARY}:{n}\n" for n in range(50)]
    assert daemon.idle_fds() == baseline
    # a run's namespaces go with its init, just after the client has the exit status
    wait_for(lambda: not mounts_at(secrets_dir), "the runs' mounts to go")
    assert not (world.runtime / "mounts").exists() or not any((world.runtime / "mounts").iterdir())
    assert client(world, "ps", "-q").stdout == ""


def test_killed_client_stops_the_command_and_its_mount(world: World, daemon: Daemon) -> None:
    secrets_dir = f"/run/secretd-test-{os.getpid()}-client"
    proc, pids = sleeper(world, secrets_dir)
    proc.kill()
    started = time.monotonic()
    wait_for(lambda: gone(pids) and not mounts_at(secrets_dir), "the command to stop", timeout=2)
    assert time.monotonic() - started < 2
    proc.communicate(timeout=5)
    assert any("went away; stopping the command" in str(e["msg"]) for e in daemon.events())


def test_command_ignoring_sigterm_is_killed_after_the_grace(world: World, daemon: Daemon) -> None:
    ready = world.root / "ready"
    proc = start_client(
        world, "--", "sh", "-c", f"trap '' TERM; touch {ready}; while :; do :; done"
    )
    wait_for(ready.exists, "the command to start")
    proc.kill()
    killed = time.monotonic()
    wait_for(lambda: client(world, "ps", "-q").stdout == "", "the run to end", timeout=3)
    assert 1.0 <= time.monotonic() - killed < 2.5  # SIGTERM ignored: SIGKILL after 1 s
    proc.communicate(timeout=5)


def test_killed_daemon_leaves_no_command_mount_or_directory(world: World, daemon: Daemon) -> None:
    secrets_dir = f"/run/secretd-test-{os.getpid()}-daemon"
    proc, pids = sleeper(world, secrets_dir)
    daemon.kill()
    wait_for(lambda: gone(pids) and not mounts_at(secrets_dir), "the command to die", timeout=2)
    _, err = proc.communicate(timeout=5)
    assert proc.returncode == 125
    assert err == (
        "secretd: the secretd daemon closed the connection before the command ended: "
        "see the daemon's log\n"
    )
    daemon.start()  # on the stale socket the killed daemon left
    assert not Path(secrets_dir).exists() and mounts_at(secrets_dir) == []
    mounts = world.runtime / "mounts"
    assert not mounts.exists() or not any(mounts.iterdir())
    assert client(world, "run", "--secret", "api_key", "--", "true").returncode == 0


def raw(world: World) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(world.socket))
    sock.settimeout(5)
    return sock


def reply_or_close(sock: socket.socket) -> dict[str, object] | None:
    """The daemon's answer to a bad frame: an error reply, or a closed connection."""
    try:
        message, _ = protocol.Channel(sock).receive(5)
    except protocol.Closed:
        return None
    finally:
        sock.close()
    return message


@pytest.mark.parametrize(
    ("frame", "half_close", "error"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", False, "exceeds the 1048576-byte limit"),
        (struct.pack(">I", 64 * 1024 * 1024), False, "frame of 67108864 bytes exceeds"),
        (struct.pack(">I", 100) + b'{"v": 1, "op"', True, "truncated frame"),
        (struct.pack(">I", 9) + b"{not json", False, "not valid UTF-8 JSON"),
        (struct.pack(">I", 2) + b"[]", False, "not a JSON object"),
        (struct.pack(">I", 3) + b"\xff\xfe{", False, "not valid UTF-8 JSON"),
        (struct.pack(">I", 100), False, "timed out"),
        (struct.pack(">I", 22) + b'{"v": 99, "op":"ping"}', False, "protocol version 99"),
        (struct.pack(">I", 22) + b'{"v": 1, "op": "boom"}', False, "unknown request 'boom'"),
        (struct.pack(">I", 28) + b'{"v":1,"op":"run","spec":{}}', False, "carries 3 descriptors"),
    ],
)
def test_bad_frames_get_an_error_and_the_daemon_keeps_serving(
    world: World, daemon: Daemon, frame: bytes, half_close: bool, error: str
) -> None:
    baseline = daemon.idle_fds()
    sock = raw(world)
    sock.sendall(frame)
    if half_close:
        sock.shutdown(socket.SHUT_WR)
    reply = reply_or_close(sock)
    assert reply is not None and reply["ok"] is False
    assert error in str(reply["error"])
    assert ping(world.socket) is not None
    assert daemon.idle_fds() == baseline


def test_descriptors_sent_with_other_requests_are_closed(world: World, daemon: Daemon) -> None:
    baseline = daemon.idle_fds()
    sock = raw(world)
    with open(os.devnull) as a, open(os.devnull) as b:
        protocol.Channel(sock).send(protocol.request("ps"), [a.fileno(), b.fileno()])
    reply = reply_or_close(sock)
    assert reply is not None and reply["ok"] is True and reply["runs"] == []
    assert daemon.idle_fds() == baseline


def test_a_silent_client_does_not_block_others(world: World, daemon: Daemon) -> None:
    idle = [raw(world) for _ in range(5)]
    assert call(world.socket, protocol.request("ping"))["ok"] is True
    assert client(world, "run", "--", "true").returncode == 0
    for sock in idle:
        sock.close()


def test_sigterm_stops_runs_and_removes_the_socket(world: World, daemon: Daemon) -> None:
    ready = world.root / "ready"
    proc = start_client(world, "--", "sh", "-c", f"touch {ready}; exec sleep 60")
    wait_for(ready.exists, "the command to start")
    assert daemon.stop() == 0
    proc.communicate(timeout=5)
    assert proc.returncode == 143
    assert not world.socket.exists()
