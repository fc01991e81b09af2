"""A daemon holding more than 1024 descriptors (a few hundred runs at once, each with its
client's three) still waits on its runs: select() refuses descriptors past 1024 (the
runs ended in an internal error and a closed connection)."""

from __future__ import annotations

import resource
import socket
import subprocess
from collections.abc import Iterator

import pytest

from .conftest import CANARY, Daemon, World, client

pytestmark = pytest.mark.root

HELD = 1100


@pytest.fixture
def patient(world: World) -> Iterator[Daemon]:
    """A daemon that waits 60 s for a request, allowed 4096 descriptors."""
    text = world.config.read_text().replace("read_timeout = 1.0", "read_timeout = 60.0")
    world.config.write_text(text)
    daemon = Daemon(world)
    daemon.start()
    subprocess.run(["prlimit", f"--pid={daemon.pid}", "--nofile=4096:4096"], check=True)
    yield daemon
    assert daemon.stop() == 0, daemon.logs()[-3000:]


def test_a_run_is_served_while_the_daemon_holds_over_1024_descriptors(
    world: World, patient: Daemon
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 4096), max(hard, 4096)))
    held: list[socket.socket] = []
    try:
        for _ in range(HELD):  # root is never refused: each one a descriptor in the daemon
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(str(world.socket))
            held.append(sock)
        ran = client(world, "run", "--secret", "api_key", "--", "cat", "/run/secrets/api_key")
        assert (ran.returncode, ran.stdout, ran.stderr) == (0, CANARY, "")
    finally:
        for sock in held:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
