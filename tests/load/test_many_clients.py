"""Many small requests at once through a real daemon: 64 clients, one request per
connection (as `bench/daemon.py` sends them), every one answered with the same reply; the
daemon serves them without a thread each and its memory stays flat. A request that
arrives a byte at a time, and clients that connect and say nothing, hold up nobody."""

from __future__ import annotations

import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from secretd import protocol
from tests.daemon.conftest import Daemon, World, call, ping
from tests.support.waiting import wait_for

pytestmark = pytest.mark.root

CLIENTS = 64
WARM_UP = 2_000
REQUESTS = 20_000


def frame(message: protocol.Message) -> bytes:
    payload = json.dumps(message).encode()
    return protocol.HEADER.pack(len(payload)) + payload


CHECK = frame(protocol.request("resolve-check", secrets=["api_key", "nope"]))


def ask(path: Path, request: bytes = CHECK) -> bytes:
    """One request on a connection of its own; the reply's bytes, up to the daemon's close."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(path))
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    return data


def load(path: Path, requests: int) -> list[bytes]:
    """``requests`` requests from ``CLIENTS`` clients at once; the distinct replies."""
    replies: set[bytes] = set()

    def client(count: int) -> None:
        for _ in range(count):
            replies.add(ask(path))

    share = requests // CLIENTS
    with ThreadPoolExecutor(CLIENTS) as pool:
        for job in [pool.submit(client, share) for _ in range(CLIENTS)]:
            job.result()
    return sorted(replies)


def status(pid: int, field: str) -> int:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return int(next(line for line in lines if line.startswith(field + ":")).split()[1])


def test_sixty_four_clients_are_all_answered_without_a_thread_each_and_memory_stays_flat(
    world: World, daemon: Daemon
) -> None:
    expected = ask(world.socket)
    (length,) = protocol.HEADER.unpack(expected[:4])
    reply = json.loads(expected[4:])
    assert length == len(expected) - 4
    assert reply == {
        "ok": True,
        "secrets": [
            {"secret": "api_key", "allowed": True, "known": True},
            {"secret": "nope", "allowed": True, "known": False},
        ],
    }
    assert load(world.socket, WARM_UP) == [expected]
    fds = daemon.idle_fds()
    idle_threads, memory = status(daemon.pid, "Threads"), status(daemon.pid, "VmRSS")

    most, done = idle_threads, threading.Event()

    def count_threads() -> None:
        nonlocal most
        while not done.is_set():
            most = max(most, status(daemon.pid, "Threads"))
            time.sleep(0.005)

    sampler = threading.Thread(target=count_threads)
    sampler.start()
    try:
        assert load(world.socket, REQUESTS) == [expected]
    finally:
        done.set()
        sampler.join()
    after = status(daemon.pid, "VmRSS")
    # a thread per connection would be ~64 (and stay for IDLE_THREAD after the warm-up)
    assert most < CLIENTS // 4, f"{most} threads under load, {idle_threads} after the warm-up"
    assert after <= memory * 1.05 + 1024, f"VmRSS {memory} kB after the warm-up, {after} kB after"
    assert daemon.idle_fds() == fds  # every connection closed


def test_a_request_arriving_a_byte_at_a_time_holds_up_nobody(world: World, daemon: Daemon) -> None:
    baseline = daemon.idle_fds()
    silent = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(8)]
    for sock in silent:
        sock.connect(str(world.socket))
    request = frame(protocol.request("version"))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as slow:
        slow.connect(str(world.socket))
        for n, byte in enumerate(request):
            slow.sendall(bytes([byte]))
            if n % 8 == 0:  # meanwhile the others are answered
                assert ping(world.socket) is not None
        reply, _ = protocol.Channel(slow).receive(10)
    assert reply["ok"] is True and reply["protocol"] == protocol.VERSION
    assert call(world.socket, protocol.request("ping"))["ok"] is True
    for sock in silent:  # read_timeout (1 s in the test config): an error, then the close
        sock.settimeout(10)
        answer, _ = protocol.Channel(sock).receive(10)
        assert "timed out waiting for a complete frame" in str(answer["error"])
        sock.close()
    wait_for(lambda: daemon.idle_fds() == baseline, "the daemon to close every connection")


def test_sigterm_while_many_clients_are_answered_stops_the_daemon(
    world: World, daemon: Daemon
) -> None:
    """The intake answers small requests in the daemon's main thread, where SIGTERM's
    handler raises: no handler's error catching may swallow it."""
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            try:
                ask(world.socket)
            except OSError:  # the daemon has gone
                return

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(5):  # SIGTERM lands somewhere else each time
            time.sleep(0.3)
            assert daemon.proc is not None and daemon.proc.poll() is None
        status_code = daemon.stop()
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert status_code == 0, daemon.logs()[-2000:]
    assert "internal error" not in daemon.logs()
