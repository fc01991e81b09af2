"""A hostile HTTP server on loopback: answers what a test tells it to, including what no
honest server would (a trickle, an endless body, a redirect elsewhere, damaged JSON).

Routes are keyed ``"METHOD /path"`` (the query left out) or, for AWS JSON-protocol calls,
``"POST Service.Operation"`` (their ``X-Amz-Target``); ``fallback`` answers the rest.
Every request is recorded in ``seen``, headers included.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

Reply = Callable[[BaseHTTPRequestHandler], None]
DROP = frozenset({"host", "content-length", "connection", "accept-encoding"})


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


def raw(payload: bytes, status: int = 200, content_type: str = "application/json") -> Reply:
    def reply(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    return reply


def answer(body: Any, status: int = 200, content_type: str = "application/json") -> Reply:
    """``body`` as JSON (AWS wants ``application/x-amz-json-1.1``)."""
    return raw(json.dumps(body).encode(), status, content_type)


def redirect(location: str, status: int = 307) -> Reply:
    def reply(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return reply


def trickle(interval: float = 0.2) -> Reply:
    """An answer that never ends: one byte of the status line every ``interval`` s."""

    def reply(handler: BaseHTTPRequestHandler) -> None:
        for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 100_000:
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
            time.sleep(interval)

    return reply


def endless(announce: bool) -> Reply:
    """A 200 whose JSON-looking body goes on for ever (800 MB announced, or no length)."""

    def reply(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        if announce:
            handler.send_header("Content-Length", str(800 * 1024 * 1024))
        handler.end_headers()
        handler.wfile.write(b'{"data": "')
        while True:
            handler.wfile.write(b"x" * 65536)

    return reply


def refused_quickly(call: Callable[[], object], message: str, within: float = 5) -> None:
    """``call()`` fails with exactly ``message`` (a ``ProviderError``) in under ``within``
    seconds: a trickle of 100 kB, or an endless body, would otherwise take hours."""
    from secretd.errors import ProviderError

    started = time.monotonic()
    try:
        call()
    except ProviderError as exc:
        assert str(exc) == message
    else:
        raise AssertionError(f"no ProviderError; expected {message!r}")
    assert time.monotonic() - started < within


def forward(target: str, before: Callable[[], Reply | None] = lambda: None) -> Reply:
    """A reverse proxy to ``target``; ``before()`` may answer instead (a fault of the
    moment: a 503, a stall)."""

    def reply(handler: BaseHTTPRequestHandler) -> None:
        instead = before()
        if instead is not None:
            instead(handler)
            return
        seen: Seen = handler.seen  # type: ignore[attr-defined]
        headers = {k: v for k, v in seen.headers.items() if k.lower() not in DROP}
        request = urllib.request.Request(
            target + handler.path, data=seen.body or None, headers=headers, method=seen.method
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, body, kind = response.status, response.read(), response.headers
        except urllib.error.HTTPError as error:
            status, body, kind = error.code, error.read(), error.headers
        raw(body, status, kind.get("Content-Type", "application/json"))(handler)

    return reply


def sequence(*replies: Reply) -> Reply:
    """The first request gets the first reply, and so on; the last one repeats."""
    calls = iter(range(len(replies)))

    def reply(handler: BaseHTTPRequestHandler) -> None:
        replies[min(next(calls, len(replies) - 1), len(replies) - 1)](handler)

    return reply


@dataclass
class HostileServer:
    routes: dict[str, Reply] = field(default_factory=dict)
    fallback: Reply = field(default_factory=lambda: answer({"errors": []}, 404))
    seen: list[Seen] = field(default_factory=list)
    url: str = ""

    def hits(self, key: str) -> int:
        """How many requests matched route ``key``."""
        return sum(1 for s in self.seen if key in (self.key(s), f"{s.method} {s.path}"))

    @staticmethod
    def key(seen: Seen) -> str:
        target = seen.headers.get("X-Amz-Target")
        return f"{seen.method} {target}" if target else f"{seen.method} {seen.path}"

    def handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            seen: Seen

            def handle_one(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                seen = Seen(
                    self.command,
                    urlsplit(self.path).path,
                    dict(self.headers),
                    self.rfile.read(length),
                )
                server.seen.append(seen)
                self.seen = seen  # for replies that need the request (a forwarding proxy)
                try:
                    server.routes.get(server.key(seen), server.fallback)(self)
                except OSError:
                    pass  # the client gave up (deadline, size cap): what the test wants

            do_GET = do_POST = do_PUT = do_DELETE = do_LIST = handle_one  # noqa: N815

            def log_message(self, *args: Any) -> None:
                return None

        return Handler


@contextmanager
def hostile_server() -> Iterator[HostileServer]:
    hostile = HostileServer()
    server = ThreadingHTTPServer(("127.0.0.1", 0), hostile.handler())
    server.daemon_threads = True
    server.block_on_close = False
    hostile.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield hostile
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
