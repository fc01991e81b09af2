"""The daemon's transport, shared by daemon.py and client.py (see docs/protocol.md):
the framing of messages and the errors they carry. Where the socket is is the client's
business (``client.py``), how the daemon comes to listen on it ``listener.py``'s.

Every message is one frame on a ``SOCK_STREAM`` Unix socket: a 4-byte big-endian length,
then that many bytes of UTF-8 JSON holding one object. Requests carry ``"v"`` (the
protocol version) and ``"op"``; replies carry ``"ok"`` or an ``"event"``. File
descriptors (the client's stdin, stdout and stderr for ``run``) travel with ``SCM_RIGHTS``
on the first byte of the frame they belong to.

Frames are capped (``MAX_FRAME``) before anything is allocated for them and a request must
arrive within a read timeout, so a client that sends garbage, a huge length or half a
frame costs the daemon one short-lived thread, never its memory or its other clients.
"""

from __future__ import annotations

import array
import base64
import binascii
import json
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from . import wire
from .errors import (
    AccessDenied,
    CommandNotFound,
    CommandNotRunnable,
    LaunchError,
    MountError,
    ProviderError,
    SecretdError,
    SecretNotFound,
    StoreError,
    UsageError,
    printable,
)

VERSION = wire.VERSION
HEADER = struct.Struct(">I")
MAX_FRAME = wire.MAX_FRAME
MAX_FDS = 3
TIMED_OUT = "timed out waiting for a complete frame"
# Ancillary room for as many descriptors as one message can carry (the kernel's
# SCM_MAX_FD): those that did not fit would be closed by the kernel in the reading thread,
# and a last close can wait as long as the file's owner likes (see ``Frame``).
FD_SPACE = socket.CMSG_SPACE(253 * array.array("i").itemsize)

Message = dict[str, Any]
# Error kinds a reply may carry, most specific first (``failure`` takes the first match).
ERRORS: dict[str, type[SecretdError]] = {
    cls.__name__: cls
    for cls in (
        AccessDenied,
        CommandNotFound,
        CommandNotRunnable,
        UsageError,
        SecretNotFound,
        ProviderError,
        StoreError,
        MountError,
        LaunchError,
        SecretdError,
    )
}


class ProtocolError(SecretdError):
    """The peer broke the framing or sent something that is not a message."""


class Closed(ProtocolError):
    """The peer closed the connection between two frames (a normal end, or a kill)."""


class Oversized(ProtocolError):
    """A message over the frame limit, which was not sent (no byte of it)."""


def request(op: str, **fields: Any) -> Message:
    """A request message of the current protocol version."""
    return {"v": VERSION, "op": op, **fields}


def strings(message: Message, key: str) -> list[str]:
    """``message[key]`` as a list of strings (empty when absent).

    Raises:
        ProtocolError: it is something else.
    """
    value = message.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ProtocolError(f"{key!r} must be a list of strings")
    return value


def encode_blob(value: bytes) -> str:
    return base64.b64encode(value).decode()


def blob(message: Message, key: str) -> bytes:
    """Bytes sent as base64 (secret values for the store: JSON has no bytes)."""
    try:
        return base64.b64decode(str(message.get(key, "")), validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError(f"{key!r} is not base64") from None


def labels(message: Message, key: str = "labels") -> dict[str, str]:
    value = message.get(key) or {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ProtocolError(f"{key!r} must be an object of strings")
    return value


def failure(exc: SecretdError) -> Message:
    """The reply for a failed request: one line, its kind, and the CLI's exit code. The
    line is printable already (``errors.printable``, which does nothing to it twice), so
    that a client need not know Unicode to print it safely (``thin.c``)."""
    kind = next(name for name, cls in ERRORS.items() if isinstance(exc, cls))
    return {"ok": False, "error": printable(exc.line()), "kind": kind, "exit_code": exc.exit_code}


def raise_for(reply: Message) -> Message:
    """Return ``reply`` if it reports success; raise the error it carries otherwise (as
    the same kind of SecretdError, so callers can tell "not found" from "denied")."""
    if reply.get("ok") is False or reply.get("event") == "error":
        cls = ERRORS.get(str(reply.get("kind")), SecretdError)
        error = cls(str(reply.get("error") or "the daemon refused the request"))
        code = reply.get("exit_code")
        error.exit_code = code if isinstance(code, int) and 0 < code < 256 else 1
        raise error
    return reply


class Channel:
    """One connection: frames out (with optional descriptors) and frames in.

    Sends are serialised by a lock, so the thread that reports a run's exit and the one
    that reports its start never interleave their bytes. Received descriptors are
    close-on-exec from the moment they arrive (``MSG_CMSG_CLOEXEC``): a command forked by
    another thread of the daemon must never inherit a different client's terminal.
    """

    def __init__(self, sock: socket.socket, max_frame: int = MAX_FRAME) -> None:
        self.sock = sock
        self.max_frame = max_frame
        self._send_lock = threading.Lock()

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Channel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, message: Message, fds: Sequence[int] = ()) -> None:
        """Send one message; ``fds`` ride along with its first byte.

        Raises:
            ProtocolError: the message is too large, or the peer is gone.
        """
        payload = json.dumps(message, separators=(",", ":")).encode()
        if len(payload) > self.max_frame:
            raise Oversized(
                f"message of {len(payload)} bytes exceeds the {self.max_frame}-byte frame limit"
            )
        data = HEADER.pack(len(payload)) + payload
        with self._send_lock:
            try:
                sent = socket.send_fds(self.sock, [data], list(fds)) if fds else 0
                if sent < len(data):  # an empty send() still fails once the peer is done
                    self.sock.sendall(data[sent:])
            except OSError as exc:
                raise ProtocolError(f"cannot send to the peer: {exc.strerror or exc}") from None

    def receive(self, timeout: float | None = None, max_fds: int = 0) -> tuple[Message, list[int]]:
        """Read one message and the descriptors that came with it (at most ``max_fds``).

        Args:
            timeout: seconds for the whole frame to arrive; ``None`` waits for ever.
            max_fds: descriptors accepted; any beyond (or any at all when 0) are closed.

        Raises:
            Closed: the peer closed the connection before a new frame began.
            ProtocolError: a truncated, oversized, late or malformed frame.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        frame = Frame(self.max_frame, max_fds)
        try:
            while True:
                self.sock.settimeout(_remaining(deadline))
                try:
                    message = frame.read(self.sock)
                except TimeoutError:
                    raise ProtocolError(TIMED_OUT) from None
                if message is not None:
                    return message, frame.fds
        except BaseException:
            frame.discard()
            raise


class Frame:
    """One frame as it arrives, in as many pieces as the peer sends it: the blocking
    ``Channel.receive`` and the daemon's intake, which reads every connection's request
    without blocking (``read`` raises ``BlockingIOError`` when nothing more is there yet).

    Only the frame's own bytes are read: what follows it (a run's signals) stays queued.
    Descriptors beyond ``max_fds``, and all of them when the frame is discarded, go to
    ``close``: the last close of a client's socket or file runs its release, which may
    wait (a TCP socket lingering on data nobody reads, a file of the client's FUSE
    mount), so a thread that must not wait passes one that closes them elsewhere.
    """

    def __init__(
        self,
        max_frame: int = MAX_FRAME,
        max_fds: int = 0,
        close: Callable[[list[int]], None] | None = None,
    ) -> None:
        self.max_frame = max_frame
        self.max_fds = max_fds
        self.close = close or _close_all
        self.fds: list[int] = []
        self._data = bytearray()
        self.size = HEADER.size  # bytes of the frame as far as known: its header's, then all

    def read(self, sock: socket.socket) -> Message | None:
        """Receive once; the message when the frame is complete, else ``None``.

        Raises:
            Closed: the peer closed or reset the connection before the frame began.
            ProtocolError: a truncated, oversized or malformed frame.
            BlockingIOError, TimeoutError: nothing arrived (non-blocking or timed socket).
        """
        data = self._data
        wanted = self.size - len(data)
        try:
            chunk, ancillary, _, _ = sock.recvmsg(wanted, FD_SPACE, socket.MSG_CMSG_CLOEXEC)
        except (BlockingIOError, TimeoutError):
            raise
        except ConnectionResetError:
            if not data:  # a peer killed with our frame unread
                raise Closed("the peer reset the connection") from None
            raise ProtocolError(f"truncated frame: the peer reset after {self._progress}") from None
        except OSError as exc:
            raise ProtocolError(f"cannot read from the peer: {exc.strerror or exc}") from None
        _collect(ancillary, self.fds, self.max_fds, self.close)
        if not chunk:
            if not data:
                raise Closed("the peer closed the connection")
            raise ProtocolError(f"truncated frame: the peer closed after {self._progress}")
        data += chunk
        if len(data) < self.size:
            return None
        if self.size == HEADER.size:
            (length,) = HEADER.unpack(data)
            if length > self.max_frame:
                raise ProtocolError(
                    f"frame of {length} bytes exceeds the {self.max_frame}-byte limit"
                )
            self.size += length
            if length:
                return None
        return _decode(bytes(data[HEADER.size :]))

    def discard(self) -> None:
        """Close the descriptors received so far (the frame will not be served)."""
        self.close(self.fds)

    @property
    def _progress(self) -> str:
        """How far the part being read got, as the errors say it."""
        if self.size == HEADER.size:
            return f"{len(self._data)} of {HEADER.size} bytes"
        return f"{len(self._data) - HEADER.size} of {self.size - HEADER.size} bytes"


def _remaining(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise ProtocolError(TIMED_OUT)
    return left


def _collect(
    ancillary: list[tuple[int, int, bytes]],
    fds: list[int],
    max_fds: int,
    close: Callable[[list[int]], None],
) -> None:
    """Keep up to ``max_fds`` passed descriptors; ``close`` every other one at once."""
    extra: list[int] = []
    for level, kind, data in ancillary:
        if level != socket.SOL_SOCKET or kind != socket.SCM_RIGHTS:
            continue
        received = array.array("i")
        received.frombytes(data[: len(data) - len(data) % received.itemsize])
        for fd in received:
            (fds if len(fds) < max_fds else extra).append(fd)
    if extra:
        close(extra)


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)
    fds.clear()


def _decode(payload: bytes) -> Message:
    try:
        message = json.loads(payload)
    except (ValueError, RecursionError):  # bad JSON or UTF-8, a number of 4,300+ digits, or
        # nesting deeper than the recursion limit: refused like any bad frame, in whatever
        # thread reads it (the daemon's intake must not die of one client's request)
        raise ProtocolError("frame is not valid UTF-8 JSON") from None
    if not isinstance(message, dict):
        raise ProtocolError("frame is not a JSON object")
    return message
