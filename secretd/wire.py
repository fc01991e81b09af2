"""The daemon protocol's fixed values, shared by the thin client (``thin.py``), the
protocol (``protocol.py``) and the signal relays (``signals.py``). Built-in modules only,
so that the thin client can take them without loading anything else."""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # no stub; signal imports enum

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
