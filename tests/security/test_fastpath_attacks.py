"""A hostile local user (``nobody``, or a raw client on the socket) against the fast path:
the daemon's intake (one thread reads every request and answers the small quick ones),
the click-free reader of ``secretd run`` and the thin client's forwarded environment.

Whatever the client sends, the daemon keeps serving everyone else, never dies and keeps
no descriptor of a connection that has ended.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from secretd import protocol
from tests.daemon.conftest import call, ping
from tests.support.launcher import install

from .conftest import NOBODY, Daemon, World, as_user, setpriv

pytestmark = pytest.mark.root

SEND_AND_READ = r"""
import socket, sys
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.connect(sys.argv[1])
sock.sendall(sys.stdin.buffer.read())
sock.shutdown(socket.SHUT_WR)
sock.settimeout(10)
got = b""
while chunk := sock.recv(65536):
    got += chunk
sys.stdout.write(got[4:].decode())
"""


def frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def as_nobody(world: World, data: bytes) -> str:
    """What the daemon answers ``nobody`` sending ``data`` on one connection."""
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": ""}
    argv = [sys.executable, "-I", "-c", SEND_AND_READ, str(world.socket)]
    done = as_user(NOBODY, argv, env, input=data, text=False, timeout=30)
    assert done.returncode == 0, done.stderr
    return str(done.stdout.decode())


def raw(world: World) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(world.socket))
    sock.settimeout(10)
    return sock


def still_serving(world: World, daemon: Daemon) -> None:
    assert daemon.proc is not None and daemon.proc.poll() is None, daemon.logs()
    assert ping(world.socket) is not None, daemon.logs()


@pytest.mark.parametrize(
    "payload",
    [
        b'{"v":1,"op":"ping","x":' + b"1" * 5000 + b"}",  # int() refuses > 4300 digits
        b'{"v":1,"op":"ping","x":' + b"[" * 3000 + b"]" * 3000 + b"}",  # recursion
        b'{"v":1,"op":"run","x":' + b"[" * 100_000 + b"]" * 100_000 + b"}",  # a big one
    ],
    ids=["huge-int", "deep-quick", "deep-large"],
)
def test_a_request_json_cannot_decode_is_refused_and_the_daemon_serves_on(
    world: World, daemon: Daemon, payload: bytes
) -> None:
    baseline = daemon.idle_fds()
    reply = json.loads(as_nobody(world, frame(payload)))
    assert reply["ok"] is False and "JSON" in reply["error"], reply
    still_serving(world, daemon)
    assert daemon.idle_fds() == baseline


def nobody_runs(world: World, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``secretd ARGS`` as ``nobody`` through the thin client (the launcher setup writes)."""
    launcher = world.root / "secretd"
    if not launcher.exists():
        install(launcher)
    base = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "SECRETD_HOST": world.host}
    return as_user(NOBODY, [str(launcher), *args], base | env, cwd=world.socket.parent)


@pytest.mark.parametrize("value_flag", ["-e", "--env", "--name", "--label", "-w"])
def test_a_double_dash_given_as_a_value_hides_no_env_file_from_the_daemon(
    world: World, daemon: Daemon, value_flag: str
) -> None:
    """``-e --``: the first ``--`` is -e's value, not the end of the options; the
    ``--env-file`` after it must not be read by the daemon with root's rights."""
    leaked = world.root / "root-only.env"
    leaked.write_text("LEAKED=root-only-3f9\n")
    leaked.chmod(0o600)
    args = [value_flag, "--", "--env-file", str(leaked), "--", "sh", "-c", "echo [$LEAKED]"]
    result = nobody_runs(world, "run", "--no-redact", *args)
    assert "root-only-3f9" not in result.stdout + result.stderr, daemon.logs()
    assert result.returncode == 2 and "is not readable" in result.stderr  # nobody's own CLI


def test_a_forwarded_command_line_runs_no_program_of_the_callers_path_as_root(
    world: World, daemon: Daemon, attacker_dir: Path
) -> None:
    """``-e -- --name x img``: not a host command (the ``--`` is -e's value), so the run
    asks whether ``img`` is an image here. The caller's PATH names its own ``podman``
    (and its DOCKER_HOST no Docker): the daemon must never start that program (the
    caller's own CLI, handed the run back, may: as the caller)."""
    proof = attacker_dir / "ran-as"
    fake = attacker_dir / "podman"
    fake.write_text(f"#!/bin/sh\nid -u >> {proof}\nexit 1\n")
    fake.chmod(0o755)
    os.chown(fake, NOBODY, NOBODY)
    env = {"PATH": f"{attacker_dir}:/usr/bin:/bin", "DOCKER_HOST": "unix:///nonexistent"}
    result = nobody_runs(world, "run", "-e", "--", "--name", "x", "img", **env)
    ran_as = proof.read_text().split() if proof.exists() else []
    assert "0" not in ran_as, "the daemon ran the caller's podman as root"
    assert "request op=argv" in daemon.logs()
    assert result.returncode != 0


LOCKER = r"""
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA locking_mode = EXCLUSIVE")
conn.execute("BEGIN EXCLUSIVE")
conn.execute("CREATE TABLE IF NOT EXISTS held (x)")
print("locked", flush=True)
sys.stdin.read()
conn.execute("ROLLBACK")
"""


def test_a_store_another_process_holds_locked_keeps_nobody_waiting(
    world: World, daemon: Daemon
) -> None:
    """A root process (an administrator's sqlite3 shell, a backup) holds the store's lock:
    ``nobody``'s quick ``resolve-check`` of a stored name must not make the daemon's one
    reading thread wait for it (30 s), with every other client behind it."""
    created = subprocess.run(
        [sys.executable, "-m", "secretd", "secret", "create", "api_stored", "-"],
        input="stored-value", env=world.env(SECRETD_HOST=world.host), cwd=world.root,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    locker = subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(world.state / "store.db")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert locker.stdout is not None and locker.stdout.readline() == "locked\n"
        check = frame(
            json.dumps(protocol.request("resolve-check", secrets=["api_stored"])).encode()
        )
        asker = subprocess.Popen(
            [*setpriv(NOBODY), sys.executable, "-I", "-c", SEND_AND_READ, str(world.socket)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )  # fmt: skip
        assert asker.stdin is not None and asker.stdout is not None
        asker.stdin.write(check)
        asker.stdin.close()
        time.sleep(0.5)  # the check is in the daemon's hands
        reply = call(world.socket, protocol.request("ping"), timeout=10)
        assert reply["ok"] is True
        out = asker.stdout.read()
        asker.stdout.close()
        assert asker.wait(10) == 0
        (answer,) = json.loads(out)["secrets"]
        assert answer == {"secret": "api_stored", "allowed": True, "known": None}
        assert locker.poll() is None  # all of it while the lock was held
    finally:
        locker.communicate("", timeout=10)
    assert json.loads(as_nobody(world, check))["secrets"][0]["known"] is True


# A descriptor whose last close waits as long as its owner likes: a TCP socket lingering
# (SO_LINGER, two minutes: far longer than a test, short enough that a close the test did
# not mean to wait on cannot hold CI for long) on data its peer, held open by the attacker,
# never reads. Small buffers keep the unsent data small. ``lingering()``: (that socket,
# what holds it).
LINGER = r"""
import json, socket, struct


def lingering():
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    stuck = socket.socket()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    stuck.connect(listener.getsockname())
    peer, _ = listener.accept()
    stuck.setblocking(False)
    try:
        while True:
            stuck.send(b"x" * 65536)
    except BlockingIOError:
        pass
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 120))
    return stuck, [listener, peer]


ping = json.dumps({"v": 1, "op": "ping"}).encode()
ping = struct.pack(">I", len(ping)) + ping
"""

LINGERING = (
    LINGER
    + r"""
import sys, threading, time
path, how = sys.argv[1], sys.argv[2]
stuck, held = lingering()
frames = {"with-request": ping, "with-a-bad-frame": struct.pack(">I", 2) + b"[]",
          "half-a-frame": ping[:10]}


def drop():
    # Which close is the last one (and waits) is a race here: the daemon's (what the test
    # is about), or this one's (a refusal can be that quick): then this one waits, not the test.
    closing = threading.Thread(target=stuck.close, daemon=True)
    closing.start()
    closing.join(0.5)


daemon = socket.socket(socket.AF_UNIX)
daemon.connect(path)
if how in frames:  # the daemon holds the descriptor until the frame is whole: no race
    socket.send_fds(daemon, [frames[how][:1]], [stuck.fileno()])
    stuck.close()
    daemon.sendall(frames[how][1:])
elif how == "beyond-the-limit":
    socket.send_fds(daemon, [ping], [0, 1, 2, stuck.fileno()])
    drop()
elif how == "after-the-request":
    daemon.sendall(ping)
    socket.send_fds(daemon, [ping], [stuck.fileno()])
    drop()
elif how == "refused":
    socket.send_fds(daemon, [ping], [stuck.fileno()])
    drop()
print("sent", flush=True)
time.sleep(120)
"""
)


@contextlib.contextmanager
def attacking(uid: int, script: str, *args: str) -> Iterator[None]:
    """``script`` running as ``uid`` from the moment it prints "sent" until it is killed
    (which ends whatever it holds)."""
    attacker = subprocess.Popen(
        [*setpriv(uid), sys.executable, "-I", "-c", script, *args],
        stdout=subprocess.PIPE, text=True, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    try:
        assert attacker.stdout is not None
        ready, _, _ = select.select([attacker.stdout], [], [], 30)
        assert ready, "the attacker never got its descriptors sent"
        assert attacker.stdout.readline() == "sent\n"
        yield
    finally:
        attacker.kill()
        attacker.wait(10)
        assert attacker.stdout is not None
        attacker.stdout.close()


@pytest.mark.parametrize(
    ("how", "uid"),
    [
        ("with-request", NOBODY),
        ("beyond-the-limit", NOBODY),
        ("after-the-request", NOBODY),
        ("with-a-bad-frame", NOBODY),
        ("half-a-frame", NOBODY),
        ("refused", 23456),  # a user the policy grants nothing: refused at once
    ],
)
def test_a_descriptor_whose_close_waits_holds_up_no_other_client(
    world: World, daemon: Daemon, how: str, uid: int
) -> None:
    """The attacker passes a descriptor and drops its own copy: the daemon's close of it
    is the last one, and waits. The thread that reads everyone's requests must not."""
    baseline = daemon.idle_fds()
    with attacking(uid, LINGERING, str(world.socket), how):
        time.sleep(1.5)  # a bad or half frame times out after the world's read_timeout, 1 s
        assert call(world.socket, protocol.request("ping"), timeout=10)["ok"] is True
    still_serving(world, daemon)
    assert daemon.idle_fds(timeout=15) == baseline


def test_an_environment_over_the_frame_limit_is_run_by_the_callers_own_cli(
    world: World, daemon: Daemon
) -> None:
    """A CI job's environment of more than 1 MiB does not fit a request: the thin client
    sends nothing and runs the full CLI at once, which says so at once (both waited for the
    daemon's read timeout, then said "timed out waiting for a complete frame")."""
    big = {f"BIG_{i}": "v" * 120_000 for i in range(9)}
    args = ["run", "--no-redact", "--", "sh", "-c", "echo ${#BIG_8}"]
    result = nobody_runs(world, *args, **big)
    assert result.returncode == 2 and result.stdout == "", result.stderr
    assert result.stderr.startswith("secretd: this request is over the secretd daemon's 1 MiB")
    assert "--no-daemon" in result.stderr
    assert "timed out" not in daemon.logs()
    clean = nobody_runs(world, "run", "--clean-env", *args[1:], **big)  # as the hint says
    assert (clean.returncode, clean.stdout, clean.stderr) == (0, "0\n", "")
