"""A hostile local user (``nobody``, or a raw client on the socket) against the fast path:
the daemon's intake (one thread reads every request and answers the small quick ones),
the click-free reader of ``secretd run`` and the thin client's forwarded environment.

Whatever the client sends, the daemon keeps serving everyone else, never dies and keeps
no descriptor of a connection that has ended.
"""

from __future__ import annotations

import json
import socket
import struct
import sys

import pytest

from tests.daemon.conftest import ping

from .conftest import NOBODY, Daemon, World, as_user

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
