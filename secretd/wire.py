"""The daemon protocol's fixed values, shared by the thin client (``thin.py``), the
protocol (``protocol.py``) and the signal relays (``signals.py``). Built-in modules only,
so that the thin client can take them without loading anything else."""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # no stub; signal imports enum
import os

VERSION = 1
MAX_FRAME = 1024 * 1024  # a 500 KiB secret, base64-encoded, fits with room to spare
SOCKET_NAME = "secretd.sock"
SYSTEM_RUNTIME_DIR = "/run/secretd"
# The signals a client relays to the command once it runs (docker run's set).
FORWARDED: tuple[int, ...] = (
    _signal.SIGINT,
    _signal.SIGTERM,
    _signal.SIGHUP,
    _signal.SIGQUIT,
    _signal.SIGUSR1,
    _signal.SIGUSR2,
)


def stdio_to_pass() -> tuple[list[int], list[int]]:
    """Descriptors 0-2 to send with a run, and those opened for it (the caller closes
    them once sent): a closed one is replaced by /dev/null, as a shell would."""
    fds, opened = [], []
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
            fds.append(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
            opened.append(null)
            fds.append(null)
    return fds, opened
