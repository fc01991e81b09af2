"""Closing what a client could make a close wait on, without the daemon waiting on it.

The last close of a client's descriptor runs its file's release, which can wait as long
as the client likes: a TCP socket lingering (``SO_LINGER``) on data a peer the client
holds never reads, a file of the client's FUSE mount. So can closing a connection whose
unread bytes carry descriptors (the kernel drops them then); one whose unread bytes carry
none (a request sent before its refusal) is closed at once.

Descriptors the daemon received (a request's) are closed in threads: each such close
counts against its uid's connection slots (``Connections.hold``) until it has finished,
and one uid has at most ``per_user`` threads closing its things at once; more of its
closes queue for those threads. A user whose closes hang holds its slots with them: its
new connections are refused, as when it holds that many connections open, while
everyone else is served. A thread that cannot be started (out of memory or of threads)
leaves the close queued, retried at the next close any client causes.

A connection whose unread bytes carry descriptors is not one the daemon can count that
way: a user at its limit can open refused connections as fast as it likes, each carrying
a lingering socket. Holding each until its close ends would run the daemon out of
descriptors, and then nobody is served. Such a connection goes to a closing process of
its own (``closing.py``, started when first needed) as a passed descriptor: in flight
it stays open, so the daemon's own close is not the last and returns at once, and the
process closes what it receives, one after another. When that process can take no more
(its queue is full of closes that hang) or is gone, it is killed, which ends at once
every close it held (the kernel waits on no lingering socket for a killed process), and
another takes its place. Without one, such a connection takes the threads' path.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import subprocess
import sys
import termios
import threading
from collections import defaultdict, deque
from pathlib import Path

from .limits import Connections

log = logging.getLogger("secretd.daemon")

Item = tuple[socket.socket | None, list[int]]

QUEUE_BYTES = 4096  # the kernel doubles it: about 11 passed descriptors

PACKAGE = str(Path(__file__).resolve().parent.parent)  # for the closing process


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
        self._handing = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._channel: socket.socket | None = None
        self._unstartable = False  # the closing process could not be started (warned)

    def release(self, uid: int, sock: socket.socket | None, fds: list[int]) -> None:
        """Close ``sock`` (a connection its thread is done with) and ``fds`` (descriptors
        its request brought); ``fds`` is emptied. A connection whose unread bytes carry no
        descriptors, without descriptors of its request (every well-behaved one), is
        closed at once."""
        if sock is not None and (_harmless(sock) or self._hand_over(sock)):
            sock.close()  # a handed-over one is in flight: this is not its last close
            sock = None
        if sock is None and not fds:
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

    def stop(self) -> None:
        """End the closing process, and every close it waits on."""
        with self._handing:
            self._retire(wait=5)

    def _hand_over(self, sock: socket.socket) -> bool:
        """Pass ``sock`` to the closing process; ``False`` when none takes it."""
        with self._handing:
            for _ in range(2):
                channel = self._channel or self._start_process()
                if channel is None:
                    return False
                try:  # the channel never blocks (send_fds ignores its flags argument)
                    socket.send_fds(channel, [b"c"], [sock.fileno()])
                except OSError:  # full of closes that hang, or gone
                    log.info("the closing process took no more closes; starting another")
                    self._retire(wait=0)
                    continue
                return True
        return False

    def _start_process(self) -> socket.socket | None:
        """Start the closing process (lock held); its channel, or ``None``."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.setblocking(False)
        # A short queue: a dozen closes that hang are enough to start afresh.
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, QUEUE_BYTES)
        try:
            process = subprocess.Popen(
                [sys.executable, "-P", "-S", "-m", "secretd.closing"],
                stdin=theirs.fileno(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                cwd="/", env={"PYTHONPATH": PACKAGE},
            )  # fmt: skip
        except OSError as exc:
            ours.close()
            if not self._unstartable:
                log.warning("cannot start the closing process: %s", exc.strerror or exc)
            self._unstartable = True
            return None
        finally:
            theirs.close()
        self._unstartable = False
        self._process, self._channel = process, ours
        return ours

    def _retire(self, wait: float) -> None:
        """Kill the closing process and drop its channel (lock held), waiting up to
        ``wait`` s for it to end. The intake's thread waits for none: subprocess reaps a
        process it let go at its next start."""
        if self._process is not None:
            self._process.kill()
            if wait:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._process.wait(wait)
        if self._channel is not None:
            self._channel.close()
        self._process = self._channel = None

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
