"""Small things every fixture needs: a free loopback port, and waiting for a condition."""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable


def free_port(kind: socket.SocketKind = socket.SOCK_STREAM, below: int | None = None) -> int:
    """A loopback port nobody holds; with ``below``, one under that bound, picked at random
    (the kernel's own picks are ephemeral ports, and Swarm's data path port must be at
    most 49151)."""
    if below is None:
        with socket.socket(socket.AF_INET, kind) as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])
    for port in random.sample(range(20000, below), 200):
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError(f"no free port between 20000 and {below}")


def wait_for(
    check: Callable[[], object], what: str, timeout: float = 10.0, interval: float = 0.02
) -> None:
    """Poll ``check`` every ``interval`` seconds until it is true; fail the test naming
    ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)
