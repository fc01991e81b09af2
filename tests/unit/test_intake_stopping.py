"""The daemon's intake stopped by SIGTERM at any point of its bookkeeping.

The daemon's SIGTERM handler raises in the intake's thread (``cli/daemon.py``), between
any two steps: between the poll's and the table's forgetting of a connection too. The
intake's ``close`` then still ends every waiting connection, without an error of its own
(a daemon under load exited 125, "internal error: FileNotFoundError", about 1 stop in 10).
"""

from __future__ import annotations

import select
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from secretd.intake import Intake
from secretd.policy import Peer
from secretd.protocol import ProtocolError


class Stopping(BaseException):
    """What the daemon's SIGTERM handler raises."""


class StoppedAfterUnregister:
    """The intake's epoll, with a SIGTERM arriving right after its first unregister."""

    def __init__(self, real: select.epoll) -> None:
        self.real = real
        self.fired = False

    def unregister(self, fd: int) -> None:
        self.real.unregister(fd)
        if not self.fired:
            self.fired = True
            raise Stopping

    def __getattr__(self, name: str) -> object:
        return getattr(self.real, name)


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(tmp_path / "s"))
    sock.listen(16)
    yield sock
    sock.close()


def test_close_after_a_stop_between_poll_and_table_ends_every_connection(
    listener: socket.socket,
) -> None:
    ended: list[str] = []

    def failed(conn: socket.socket, peer: Peer, error: ProtocolError) -> None:
        ended.append(error.message)
        conn.close()

    peer = Peer(1, 0, 0, (0,))
    intake = Intake(listener, 60, lambda conn: peer, lambda *a: None, failed, 3)
    clients = []
    for _ in range(3):
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(listener.getsockname())
        client.sendall(b"\0\0")  # half a header: each one waits
        clients.append(client)
    stopping = threading.Event()
    threading.Timer(0.3, stopping.set).start()
    intake.run(stopping, 0.05)
    assert len(intake._waiting) == 3
    intake._poll = StoppedAfterUnregister(intake._poll)  # type: ignore[assignment]
    first = next(iter(intake._waiting.values()))
    with pytest.raises(Stopping):
        intake._forget(first)
    intake.close()  # raised FileNotFoundError: the first one was no longer in the poll
    assert len(ended) >= 2 and set(ended) == {"the daemon is stopping"}
    assert not intake._waiting
    first.sock.close()
    for client in clients:
        client.close()
