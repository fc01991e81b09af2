"""HTTP for the providers that talk to servers (Vault, AWS): one deadline and one size
cap per request, and credentials sent to the configured origin only.

urllib3 (under hvac's requests and under botocore) bounds each socket read, not a
request: a server that answers one byte a second holds a request for ever, and a body is
read whole, whatever its size. Here every connection registers with the deadline of the
request it serves; when the deadline passes, a timer shuts the sockets down, which ends
whatever read is blocked on them, and the request fails as ``DeadlineExceeded``.
Bodies are read in chunks and refused past the cap. A redirect to another scheme, host
or port is refused before anything is sent there: requests keeps custom headers such as
``X-Vault-Token`` across redirects, to any host.

urllib3 is imported lazily (it comes with hvac and with botocore, not with secretd).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import urljoin, urlsplit

DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_SIZE = 4 * 1024 * 1024
CHUNK = 64 * 1024
REDIRECTS = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True)
class Limits:
    """What one request may cost: ``timeout`` seconds in all (connecting, retries,
    redirects and the body included) and ``max_size`` bytes of body."""

    timeout: float = DEFAULT_TIMEOUT
    max_size: int = DEFAULT_MAX_SIZE


class TransportError(Exception):
    """Not a urllib3 or requests exception, so that no library retries or rewraps it;
    each provider turns it into its own one-line error."""


class DeadlineExceeded(TransportError):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"no answer within {seconds:g}s")
        self.seconds = seconds


class ResponseTooLarge(TransportError):
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = size_text(limit)
        super().__init__(f"an answer of more than {self.size}")


class RedirectRefused(TransportError):
    def __init__(self, target: str) -> None:
        super().__init__(f"a redirect to {target}")
        self.target = target


def size_text(size: int) -> str:
    """``4194304`` -> ``4 MiB``, ``2048`` -> ``2 KiB``, ``1000`` -> ``1000 bytes``."""
    for unit, name in ((1 << 20, "MiB"), (1 << 10, "KiB")):
        if size >= unit and size % unit == 0:
            return f"{size // unit} {name}"
    return f"{size} bytes"


def origin(url: str) -> str:
    """``scheme://host:port`` of a URL, with the scheme's default port made explicit."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    port = port or {"http": 80, "https": 443}.get(parts.scheme.lower())
    return f"{parts.scheme.lower()}://{(parts.hostname or '').lower()}:{port}"


def check_redirect(base: str, url: str, status: int, headers: Mapping[str, str]) -> None:
    """Refuse an answer that sends the client to another origin than ``base``'s.

    Raises:
        RedirectRefused: names the target's origin only (its path and query may carry
            anything the server chose).
    """
    location = headers.get("location") or headers.get("Location")
    if status in REDIRECTS and location:
        target = urljoin(url, location)
        if origin(target) != origin(base):
            parts = urlsplit(target)
            raise RedirectRefused(f"{parts.scheme}://{parts.netloc}")


def read_capped(chunks: Iterable[bytes], limit: int, length: str | None = None) -> bytes:
    """Join a body's chunks, refusing it as soon as it outgrows ``limit`` bytes.

    Raises:
        ResponseTooLarge: the announced length or the bytes read exceed ``limit``.
    """
    if length is not None and length.strip().isdigit() and int(length) > limit:
        raise ResponseTooLarge(limit)
    body = bytearray()
    for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise ResponseTooLarge(limit)
    return bytes(body)


class Deadline:
    """The end of one request: a timer that shuts down the sockets of every connection
    registered with it (through the connection classes below) when time is up."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._connections: list[Any] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def watch(self, connection: Any) -> None:
        """Register a connection about to be used; refuse to use one after the deadline."""
        with self._lock:
            if self.expired:
                raise DeadlineExceeded(self.seconds)
            self._connections.append(connection)

    def cancel(self) -> None:
        self._timer.cancel()

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for connection in self._connections:
                sock = getattr(connection, "sock", None)
                if sock is not None:
                    try:  # the plain socket's shutdown, also under TLS: ends a blocked read
                        socket.socket.shutdown(sock, socket.SHUT_RDWR)
                    except OSError:
                        pass


_current = threading.local()


@contextmanager
def deadline(seconds: float) -> Iterator[Deadline]:
    """The deadline of the request this thread is making: a new one, or the one an outer
    caller already set (so retries and redirects share it).

    Raises:
        DeadlineExceeded: time ran out, whatever the library raised when its socket closed.
    """
    outer: Deadline | None = getattr(_current, "deadline", None)
    if outer is not None:
        yield outer
        return
    current = Deadline(seconds)
    _current.deadline = current
    try:
        yield current
    except Exception:
        if current.expired:
            raise DeadlineExceeded(seconds) from None
        raise
    finally:
        current.cancel()
        _current.deadline = None


def _watch(connection: Any) -> None:
    current: Deadline | None = getattr(_current, "deadline", None)
    if current is not None:
        current.watch(connection)


@cache
def pool_classes() -> dict[str, type]:
    """urllib3 pool classes whose connections register with the thread's deadline."""
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    class Watched:
        def connect(self) -> None:
            _watch(self)
            super().connect()  # type: ignore[misc]

        def request(self, *args: Any, **kwargs: Any) -> None:
            _watch(self)
            super().request(*args, **kwargs)  # type: ignore[misc]

    class WatchedHTTP(Watched, HTTPConnection):
        pass

    class WatchedHTTPS(Watched, HTTPSConnection):
        pass

    class HTTPPool(HTTPConnectionPool):
        ConnectionCls = WatchedHTTP

    class HTTPSPool(HTTPSConnectionPool):
        ConnectionCls = WatchedHTTPS

    return {"http": HTTPPool, "https": HTTPSPool}
