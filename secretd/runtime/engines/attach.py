"""Copy between the client's stdio and a container's attach stream, as ``docker run``
does without ``-d``.

The stdio are file descriptors: secretd's own, or the client's passed to the daemon, so the
container reads and writes the user's terminal or pipes directly. Without a terminal,
Docker multiplexes stdout and stderr into frames (an 8-byte header: stream id, 3 zero bytes,
big-endian length); with ``-t`` the stream is the raw terminal. The exit status arrives on
a separate wait request registered before the container started (docker.py).
"""

from __future__ import annotations

import logging
import os
import select
import socket
import termios
import threading
import tty
from typing import Any

from ...errors import LaunchError
from ...spec import Stdio

log = logging.getLogger(__name__)

DRAIN = 2.0  # seconds to finish copying output once the container has exited
STDERR = 2  # stream id of stderr frames (stdout is 1)


class Attachment:
    """The threads that copy output and input, and the one that awaits the exit status.

    Args:
        stdio: the client's stdin, stdout, stderr.
        sock: the hijacked attach connection.
        waiter: the wait response (``requests.Response``) whose body is the exit status.
        raw: the container has a terminal (``-t``): no frames, and with ``interactive``
            the client's terminal is put in raw mode until ``close``.
        interactive: copy stdin (``-i``); its end half-closes the connection, which
            closes the container's stdin.
    """

    def __init__(
        self, stdio: Stdio, sock: socket.socket, waiter: Any, raw: bool, interactive: bool
    ) -> None:
        self.stdio = stdio
        self.sock = sock
        self.status: int | None = None
        self.failure: str | None = None
        self.exited = threading.Event()
        self._saved_tty: list[Any] | None = None
        self._stop_r, self._stop_w = os.pipe()
        if raw and interactive and os.isatty(stdio[0]):
            self._saved_tty = termios.tcgetattr(stdio[0])
            tty.setraw(stdio[0])
        self._output = threading.Thread(target=self._copy_output, args=(raw,), daemon=True)
        self._input = threading.Thread(target=self._copy_input, daemon=True)
        threading.Thread(target=self._await_exit, args=(waiter,), daemon=True).start()
        self._output.start()
        if interactive:
            self._input.start()

    def wait(self, timeout: float | None) -> int | None:
        """The exit status once the container ended and its output is copied.

        Raises:
            LaunchError: the connection to the engine broke first.
        """
        if not self.exited.wait(timeout):
            return None
        self._output.join(DRAIN)
        if self.failure:
            raise LaunchError(self.failure, "see 'docker ps -a' for the container's state")
        return self.status

    def _await_exit(self, waiter: Any) -> None:
        import requests.exceptions

        try:
            self.status = int(waiter.json().get("StatusCode", 125))
        except (OSError, ValueError, requests.exceptions.RequestException) as exc:
            self.failure = f"lost the connection to Docker while waiting ({type(exc).__name__})"
        finally:
            waiter.close()
            self.exited.set()

    def _copy_output(self, raw: bool) -> None:
        out, err = self.stdio[1], self.stdio[2]
        try:
            if raw:
                while data := self.sock.recv(65536):
                    write_all(out, data)
                return
            while header := _recv_exact(self.sock, 8):
                payload = _recv_exact(self.sock, int.from_bytes(header[4:8], "big"))
                write_all(err if header[0] == STDERR else out, payload)
        except OSError as exc:
            log.debug("attach stream ended: %s", exc.strerror)

    def _copy_input(self) -> None:
        try:
            waiting = select.poll()  # not select(): a daemon holds descriptors past 1024
            waiting.register(self.stdio[0], select.POLLIN)
            waiting.register(self._stop_r, select.POLLIN)
            while True:
                ready = [fd for fd, _ in waiting.poll()]
                if self._stop_r in ready:
                    return
                data = os.read(self.stdio[0], 65536)
                if not data:
                    self.sock.shutdown(socket.SHUT_WR)
                    return
                self.sock.sendall(data)
        except OSError as exc:
            log.debug("stdin copy ended: %s", exc.strerror)

    def close(self) -> None:
        """Stop copying, give the terminal its mode back, drop the connection."""
        if self._stop_w < 0:
            return
        os.write(self._stop_w, b"x")
        if self._input.is_alive():
            self._input.join(DRAIN)
        if self._saved_tty is not None:
            termios.tcsetattr(self.stdio[0], termios.TCSADRAIN, self._saved_tty)
        self.sock.close()
        for fd in (self._stop_r, self._stop_w):
            os.close(fd)
        self._stop_r = self._stop_w = -1


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = sock.recv(left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def write_all(fd: int, data: bytes) -> None:
    """Write everything; a reader that went away (EPIPE) just stops getting output."""
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except BrokenPipeError:
        log.debug("output closed by the reader; dropping %d bytes", len(view))
