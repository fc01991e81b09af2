"""A local user piling up closes that wait (``closer.py``). A descriptor the daemon
received holds a daemon thread until its close ends: those count against the user's
connection slots, and one user has at most ``max_connections_per_user`` threads closing
its things; the rest queue. That user is refused while its closes hang; other users are
served. Its refused connections, each carrying a lingering socket the daemon never read,
cost the daemon nothing: they go to the closing process, replaced when it is full.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

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
REFUSED_CLOSES = 40  # more than the closing process's queue holds (about 11)

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


def ended(pid: int) -> bool:
    """Whether ``pid`` is gone or a zombie its parent has not reaped yet."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


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


def test_refused_connections_carrying_closes_that_wait_cost_the_daemon_nothing(
    world: World, bounded: Daemon
) -> None:
    """Past its slots, every connection is refused with a lingering socket in its unread
    bytes: the daemon holds no descriptor and no thread for any of them."""
    baseline_fds = bounded.idle_fds()
    baseline = threads(bounded)
    with attacking(NOBODY, PILE, str(world.socket), str(REFUSED_CLOSES)):
        time.sleep(1.5)
        # the waiting closes holding the slots: a received socket and its connection each
        held = len(os.listdir(f"/proc/{bounded.pid}/fd")) - len(bounded.closing())
        assert held <= baseline_fds + 2 * SLOTS, bounded.logs()
        assert threads(bounded) - baseline <= SLOTS, bounded.logs()
        (closing,) = bounded.closing()
        assert "the closing process took no more closes; starting another" in bounded.logs()
        assert ping_as(world, OTHER)["ok"] is True, bounded.logs()
        assert call(world.socket, protocol.request("ping"), timeout=10)["ok"] is True
    assert bounded.idle_fds(timeout=30) == baseline_fds
    wait_for(lambda: ping_as(world, NOBODY)["ok"] is True, "nobody's slots to come back", 30)
    assert bounded.stop() == 0, bounded.logs()
    assert not Path(f"/proc/{closing}").exists(), "the closing process outlived the daemon"


def test_a_daemon_killed_mid_close_leaves_no_closing_process(world: World, bounded: Daemon) -> None:
    """``kill -9`` while the closing process waits on a close: it goes with the daemon."""
    with attacking(NOBODY, PILE, str(world.socket), str(SLOTS + 3)):
        wait_for(lambda: bounded.closing(), "the closing process to start", 10)
        (closing,) = bounded.closing()
        bounded.kill()
        wait_for(lambda: not Path(f"/proc/{closing}").exists(), "the closing process to end", 10)


def test_a_closing_process_killed_mid_close_is_replaced(world: World, bounded: Daemon) -> None:
    """``kill -9`` of the closing process itself: the daemon starts another at the next
    such close and serves everyone meanwhile."""
    baseline_fds = bounded.idle_fds()
    with attacking(NOBODY, PILE, str(world.socket), str(SLOTS + 3)):
        wait_for(lambda: bounded.closing(), "the closing process to start", 10)
        (first,) = bounded.closing()
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: ended(first), "the closing process to end", 10)
        assert ping_as(world, OTHER)["ok"] is True, bounded.logs()
    with attacking(NOBODY, PILE, str(world.socket), str(SLOTS + 3)):
        wait_for(lambda: bounded.closing() not in ([], [first]), "another closing process", 10)
        assert ping_as(world, OTHER)["ok"] is True, bounded.logs()
    assert bounded.idle_fds(timeout=30) == baseline_fds
    assert "the closing process took no more closes; starting another" in bounded.logs()
