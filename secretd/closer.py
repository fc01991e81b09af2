"""Closing what a client could make a close wait on, in threads, a bounded number per uid.

The last close of a client's descriptor runs its file's release, which can wait as long
as the client likes: a TCP socket lingering (``SO_LINGER``) on data a peer the client
holds never reads, a file of the client's FUSE mount. So can closing a connection whose
unread bytes carry descriptors (the kernel drops them then); one whose unread bytes carry
none (a request sent before its refusal) is closed at once. The intake's thread must
not wait on those, so they are closed in threads of their own; but a thread per close
let one user hold as many threads as it had lingering sockets to pass.

So each close that may wait counts against its uid's connection slots
(``Connections.hold``) until it has finished, and one uid has at most ``per_user``
threads closing its things at once; more of its closes queue for those threads. A user
whose closes hang holds its slots with them: its new connections are refused, as when it
holds that many connections open, while everyone else is served. A thread that cannot be
started (out of memory or of threads) leaves the close queued, retried at the next close
any client causes; the connection stays open (and counted) meanwhile, nothing is lost.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import termios
import threading
from collections import defaultdict, deque

from .limits import Connections

log = logging.getLogger("secretd.daemon")

Item = tuple[socket.socket | None, list[int]]


class Closer:
    """Closes connections and passed descriptors without waiting on their owner.

    Args:
        per_user: threads closing one uid's things at once.
        connections: whose slots a pending close holds (``None``: no slots).
    """

    def __init__(self, per_user: int, connections: Connections | None = None) -> None:
        self.per_user = per_user
        self.connections = connections
        self._lock = threading.Lock()
        self._queued: defaultdict[int, deque[Item]] = defaultdict(deque)
        self._running: dict[int, int] = {}
        self._stalled: set[int] = set()  # uids with queued closes and no thread for them
        self._warned = False

    def release(self, uid: int, sock: socket.socket | None, fds: list[int]) -> None:
        """Close ``sock`` (a connection its thread is done with) and ``fds`` (descriptors
        its request brought); ``fds`` is emptied. A connection whose unread bytes carry no
        descriptors, without descriptors of its request (every well-behaved one), is
        closed at once."""
        if not fds and (sock is None or _harmless(sock)):
            if sock is not None:
                sock.close()
            return
        item = (sock, list(fds))
        fds.clear()
        if self.connections is not None:
            self.connections.hold(uid)
        with self._lock:
            self._queued[uid].append(item)
            starting = [uid, *self._stalled]
            self._stalled.clear()
            starting = [u for u in dict.fromkeys(starting) if self._take_thread(u)]
        for each in starting:
            self._start(each)

    def _take_thread(self, uid: int) -> bool:
        """Count a thread for ``uid`` if it may have one more (lock held)."""
        running = self._running.get(uid, 0)
        if running >= self.per_user:
            return False
        self._running[uid] = running + 1
        return True

    def _start(self, uid: int) -> None:
        try:
            thread = threading.Thread(
                target=self._work, args=(uid,), daemon=True, name="secretd-close"
            )
            thread.start()
        except (RuntimeError, MemoryError):
            with self._lock:
                self._stop_thread(uid)
                if self._queued.get(uid):
                    self._stalled.add(uid)
                warn, self._warned = not self._warned, True
            if warn:
                log.warning(
                    "cannot start a thread to close a connection; it stays open until one starts"
                )
            return
        self._warned = False

    def _stop_thread(self, uid: int) -> None:
        """Uncount one of ``uid``'s threads (lock held)."""
        self._running[uid] -= 1
        if not self._running[uid]:
            del self._running[uid]

    def _work(self, uid: int) -> None:
        """Close ``uid``'s queued things one after another; end when none is left."""
        while True:
            with self._lock:
                queued = self._queued.get(uid)
                if not queued:
                    self._queued.pop(uid, None)
                    self._stop_thread(uid)
                    return
                sock, fds = queued.popleft()
            _close(sock, fds)
            if self.connections is not None:
                self.connections.release(uid)


def _harmless(sock: socket.socket) -> bool:
    """Whether closing ``sock`` releases no descriptor of the client's: its unread bytes
    (a request sent before a refusal, a second frame) carry none. Once reading is shut
    down the client's sends fail, so nothing can arrive after the count. The count is the
    kernel's (``scm_fds`` in the socket's fdinfo, Linux 5.3+); without it, only a
    connection with nothing unread is."""
    try:
        sock.shutdown(socket.SHUT_RD)
        if fcntl.ioctl(sock, termios.FIONREAD, b"\0\0\0\0") == b"\0\0\0\0":
            return True
        with open(f"/proc/self/fdinfo/{sock.fileno()}", "rb") as info:
            lines = info.read().splitlines()
    except OSError:
        return False
    return b"scm_fds: 0" in lines


def _close(sock: socket.socket | None, fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    if sock is not None:
        sock.close()
