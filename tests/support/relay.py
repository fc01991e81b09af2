"""A loopback TCP relay that holds every answer for a while, as a distant server would:
the single-flight test and bench put it between the daemon and OpenBao, so that runs
started together are all in flight while the first upstream read is."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
import time
from collections.abc import Iterator


class Relay(socketserver.ThreadingTCPServer):
    """Relays 127.0.0.1:``port`` to ``target``; each chunk coming back waits ``delay`` s."""

    daemon_threads = True

    def __init__(self, target: tuple[str, int], delay: float) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.target, self.delay = target, delay

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        server: Relay = self.server  # type: ignore[assignment]
        with socket.create_connection(server.target) as upstream:
            forth = threading.Thread(target=_pipe, args=(self.request, upstream, 0.0))
            forth.start()
            _pipe(upstream, self.request, server.delay)
            forth.join()


def _pipe(source: socket.socket, sink: socket.socket, delay: float) -> None:
    try:
        while data := source.recv(65536):
            time.sleep(delay)
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def relay(target: tuple[str, int], delay: float) -> Iterator[Relay]:
    """A serving ``Relay``, shut down on the way out."""
    server = Relay(target, delay)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
