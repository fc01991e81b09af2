"""The daemon's front door: one thread accepts connections and reads each one's request
without blocking (``epoll``), so a connection costs no thread until its request is whole.

A thread per connection from ``accept()`` on made every small request pay for waking a
thread, and, with 64 clients at once, 64 runnable threads handing Python's lock back and
forth on each system call: three quarters of the daemon's CPU went to the kernel's
scheduler. Here the request is read where it was accepted, and the daemon decides who
serves it (``Daemon._arrived``): small, quick ones on the spot, the rest in a thread.

A client has ``read_timeout`` seconds from its connection to send its whole request; one
that sends nothing, half a frame or garbage holds a descriptor until then, never a thread.

This thread never closes what a client could make its close wait on: a descriptor the
client passed, or a connection whose unread bytes still carry some (``closer.py``).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .closer import Closer
from .limits import Limits
from .policy import Peer
from .protocol import TIMED_OUT, Frame, Message, ProtocolError

log = logging.getLogger("secretd.daemon")

ACCEPT_BATCH = 64  # connections taken per wake-up before reading the waiting ones again
ACCEPT_RETRY = 0.1  # seconds without accepting once out of descriptors

Opened = Callable[[socket.socket], Peer | None]
Arrived = Callable[[socket.socket, Peer, Message, list[int], int], None]
Failed = Callable[[socket.socket, Peer, ProtocolError], None]


@dataclass(slots=True)
class _Waiting:
    """A connection whose request is still arriving."""

    sock: socket.socket
    peer: Peer
    frame: Frame
    deadline: float


class Intake:
    """Accepts on ``listener`` and reads requests, until ``stopping`` is set.

    Args:
        opened: called with each new (non-blocking) connection; returns its peer, or
            ``None`` when it has already been answered and closed (refused).
        arrived: called with a complete request (the connection, the peer, the message,
            its descriptors and the frame's size); closing the connection is its job.
        failed: called when a request will not arrive (the peer closed, a bad or late
            frame); answering and closing the connection is its job.
        max_fds: descriptors a request may carry.
        closer: closes the descriptors beyond ``max_fds`` and those of a request that
            will not arrive (default: one of its own, ``max_connections_per_user``
            threads per uid, holding no slots).
    """

    def __init__(
        self,
        listener: socket.socket,
        read_timeout: float,
        opened: Opened,
        arrived: Arrived,
        failed: Failed,
        max_fds: int,
        closer: Closer | None = None,
    ) -> None:
        self.listener = listener
        self.read_timeout = read_timeout
        self.opened, self.arrived, self.failed = opened, arrived, failed
        self.max_fds = max_fds
        self.closer = closer or Closer(Limits().max_connections_per_user)
        self._poll = select.epoll()
        self._listening = listener.fileno()
        # in the order they connected, which is the order of their deadlines
        self._waiting: dict[int, _Waiting] = {}

    def run(self, stopping: threading.Event, tick: float) -> None:
        """Serve until ``stopping`` is set, waking at least every ``tick`` seconds (a
        signal handler of the main thread runs when it wakes)."""
        self.listener.setblocking(False)
        self._poll.register(self._listening, select.EPOLLIN)
        while not stopping.is_set():
            for fd, _ in self._poll.poll(self._timeout(tick)):
                if fd == self._listening:
                    self._accept()
                elif fd in self._waiting:
                    self._read(self._waiting[fd])
            self._expire()

    def close(self) -> None:
        """Drop the connections whose requests had not arrived, and stop polling."""
        for waiting in list(self._waiting.values()):
            self._give_up(waiting, ProtocolError("the daemon is stopping"))
        self._poll.close()

    def _timeout(self, tick: float) -> float:
        if not self._waiting:
            return tick
        first = next(iter(self._waiting.values()))
        return max(0.0, min(tick, first.deadline - time.monotonic()))

    def _accept(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                sock, _ = self.listener.accept()
            except BlockingIOError:
                return
            except OSError as exc:  # out of descriptors: the clients holding them will go
                log.error("cannot accept a connection: %s", exc.strerror or exc)
                time.sleep(ACCEPT_RETRY)
                return
            sock.setblocking(False)
            peer = self.opened(sock)
            if peer is None:
                continue
            close = functools.partial(self.closer.release, peer.uid, None)
            frame = Frame(max_fds=self.max_fds, close=close)
            waiting = _Waiting(sock, peer, frame, time.monotonic() + self.read_timeout)
            self._read(waiting, waited=False)  # the request is usually there already

    def _read(self, waiting: _Waiting, waited: bool = True) -> None:
        """Read what has arrived; hand the request on once it is whole, or else wait
        for more (``waited``: the connection is already in the poll)."""
        try:
            while (message := waiting.frame.read(waiting.sock)) is None:
                pass
        except BlockingIOError:
            if not waited:
                self._waiting[waiting.sock.fileno()] = waiting
                self._poll.register(waiting.sock, select.EPOLLIN)
            return
        except ProtocolError as exc:
            self._give_up(waiting, exc, waited)
            return
        if waited:
            self._forget(waiting)
        self.arrived(waiting.sock, waiting.peer, message, waiting.frame.fds, waiting.frame.size)

    def _give_up(self, waiting: _Waiting, error: ProtocolError, waited: bool = True) -> None:
        """The request will not arrive: close what came with it, let the daemon answer."""
        if waited:
            self._forget(waiting)
        waiting.frame.discard()
        self.failed(waiting.sock, waiting.peer, error)

    def _forget(self, waiting: _Waiting) -> None:
        """Out of the table and the poll, even half-way out already: the daemon's SIGTERM
        raises in this thread between any two steps, and ``close`` follows."""
        fd = waiting.sock.fileno()
        self._waiting.pop(fd, None)
        with contextlib.suppress(FileNotFoundError):
            self._poll.unregister(fd)

    def _expire(self) -> None:
        now = time.monotonic()
        while self._waiting:
            waiting = next(iter(self._waiting.values()))
            if waiting.deadline > now:
                return
            self._give_up(waiting, ProtocolError(TIMED_OUT))
