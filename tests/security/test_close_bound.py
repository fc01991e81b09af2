"""A local user piling up closes that wait: each one holds a daemon thread until the
close ends (``closer.py``). They count against the user's connection slots, and one
user has at most ``max_connections_per_user`` threads closing its things; the rest
queue. That user is refused while its closes hang; other users are served.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator

import pytest

from secretd import protocol
from tests.daemon.conftest import call
from tests.support.waiting import wait_for

from .conftest import NOBODY, Daemon, World, as_user
from .test_fastpath_attacks import LINGER, attacking, frame

pytestmark = pytest.mark.root

SLOTS = 4
OTHER = 23456  # a second user the policy grants api_*
LINGERING_CLOSES = 12

# COUNT connections, each passing a TCP socket whose last close (the daemon's) waits
# (LINGER). The descriptor goes with the request's first byte, so a connection the
# daemon reads holds it before this process drops its own copy.
PILE = (
    LINGER
    + r"""
import contextlib, sys, threading, time
path, count = sys.argv[1], int(sys.argv[2])
held = []
for _ in range(count):
    stuck, holders = lingering()
    daemon = socket.socket(socket.AF_UNIX)
    daemon.connect(path)
    with contextlib.suppress(OSError):  # refused at once: nothing was passed
        socket.send_fds(daemon, [ping[:1]], [stuck.fileno()])
    # Drop this copy before the frame is whole, so the daemon's close is the last one. If
    # the daemon refused and dropped its copy first, this close is the one that waits: in
    # a thread, so this process never waits on it.
    closing = threading.Thread(target=stuck.close, daemon=True)
    closing.start()
    closing.join(0.5)
    with contextlib.suppress(OSError):  # refused: the daemon no longer reads
        daemon.sendall(ping[1:])
    held += [*holders, daemon]
    time.sleep(0.05)
print("sent", flush=True)
time.sleep(120)
"""
)


# One request, one reply frame (a refused client's connection may be reset after it).
ASK = r"""
import socket, struct, sys
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.connect(sys.argv[1])
sock.settimeout(10)
try:
    sock.sendall(sys.stdin.buffer.read())
except OSError:  # refused before it was sent: the reply is there
    pass
got = b""
while len(got) < 4 or len(got) < 4 + struct.unpack(">I", got[:4])[0]:
    got += sock.recv(65536) or sys.exit("closed before the reply")
sys.stdout.write(got[4:].decode())
"""


@pytest.fixture
def bounded(world: World) -> Iterator[Daemon]:
    """The daemon with 4 slots per user, granting ``nobody`` and OTHER api_*."""
    text = world.config.read_text()
    text = text.replace("[daemon]\n", f"[daemon]\nmax_connections_per_user = {SLOTS}\n")
    world.config.write_text(text.replace('users = ["nobody"]', f'users = ["nobody", "{OTHER}"]'))
    started = Daemon(world)
    started.start()
    yield started
    if started.proc is not None and started.proc.poll() is None:
        assert started.stop() == 0, started.logs()


def ping_as(world: World, uid: int) -> dict[str, object]:
    """What the daemon answers ``uid``'s ping on a connection of its own."""
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": ""}
    argv = [sys.executable, "-I", "-c", ASK, str(world.socket)]
    data = frame(json.dumps(protocol.request("ping")).encode())
    done = as_user(uid, argv, env, input=data, text=False, timeout=30)
    assert done.returncode == 0, done.stderr
    reply: dict[str, object] = json.loads(done.stdout.decode())
    return reply


def threads(daemon: Daemon) -> int:
    return len(os.listdir(f"/proc/{daemon.pid}/task"))


def test_closes_that_wait_hold_the_users_slots_and_no_more_threads_than_them(
    world: World, bounded: Daemon
) -> None:
    baseline_fds = bounded.idle_fds()
    baseline = threads(bounded)
    with attacking(NOBODY, PILE, str(world.socket), str(LINGERING_CLOSES)):
        time.sleep(1.5)  # every close the daemon will start has started
        assert threads(bounded) - baseline <= SLOTS, bounded.logs()
        refused = ping_as(world, NOBODY)
        assert refused["ok"] is False, refused
        assert f"uid {NOBODY} already has" in str(refused["error"])
        assert "max_connections_per_user" in str(refused["error"])
        assert ping_as(world, OTHER)["ok"] is True, bounded.logs()
        assert call(world.socket, protocol.request("ping"), timeout=10)["ok"] is True
    # the attacker gone, its sockets reset: every queued close ends, and its slots return
    assert bounded.idle_fds(timeout=30) == baseline_fds
    wait_for(lambda: ping_as(world, NOBODY)["ok"] is True, "nobody's slots to come back", 30)
    wait_for(lambda: threads(bounded) <= baseline, "the closing threads to end", 30)
