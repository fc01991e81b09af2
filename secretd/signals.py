"""Signals a user sends to secretd, relayed to the command (``docker run``'s behaviour).

Kept apart from the engine so that a client that hands its run to the daemon relays
signals without importing the run pipeline.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Mapping
from typing import Any, Self

from . import wire
from .spec import Container

FORWARDED = tuple(signal.Signals(signum) for signum in wire.FORWARDED)


class Relay:
    """Handlers for the length of a ``with`` block, what was there before put back after
    it: the base of the in-process relay below and the daemon client's (client.py)."""

    def handlers(self) -> Mapping[int, Callable[[int, Any], None] | signal.Handlers]:
        """The handler of each signal this relay takes (``SIG_IGN`` too: unlike a handler,
        an ignored signal stays ignored in a child started meanwhile)."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        self._previous = {sig: signal.signal(sig, fn) for sig, fn in self.handlers().items()}
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class SignalForwarder(Relay):
    """Relays the signals a user sends to secretd to the command, as ``docker run`` does.

    Before the command exists, a signal stops secretd itself (cleanly: leases revoked,
    nothing mounted), with the status a shell reports for it (128+N).
    """

    def __init__(self) -> None:
        self.container: Container | None = None

    def attach(self, container: Container) -> None:
        self.container = container

    def _handle(self, signum: int, _frame: object) -> None:
        if self.container is None:
            raise SystemExit(128 + signum)
        self.container.signal(signal.Signals(signum))

    def _resized(self, signum: int, _frame: object) -> None:
        """The terminal changed size: runtimes that own the command's terminal resize it
        (a resize before the command exists changes nothing)."""
        if self.container is not None:
            self.container.signal(signal.SIGWINCH)

    def handlers(self) -> dict[int, Callable[[int, Any], None]]:
        return {**dict.fromkeys(FORWARDED, self._handle), signal.SIGWINCH: self._resized}
