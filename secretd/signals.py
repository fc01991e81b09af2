"""Signals a user sends to secretd, relayed to the command (``docker run``'s behaviour).

Kept apart from the engine so that a client that hands its run to the daemon relays
signals without importing the run pipeline.
"""

from __future__ import annotations

import signal
from typing import Any

from .spec import Container

FORWARDED = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)


class SignalForwarder:
    """Relays the signals a user sends to secretd to the command, as ``docker run`` does.

    Before the command exists, a signal stops secretd itself (cleanly: leases revoked,
    nothing mounted), with the status a shell reports for it (128+N).
    """

    def __init__(self) -> None:
        self.container: Container | None = None
        self._previous: dict[int, Any] = {}

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

    def __enter__(self) -> SignalForwarder:
        self._previous = {sig: signal.signal(sig, self._handle) for sig in FORWARDED}
        self._previous[signal.SIGWINCH] = signal.signal(signal.SIGWINCH, self._resized)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
