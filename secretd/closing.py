"""The daemon's closing process (``closer.py``): it closes, one after another, each
descriptor the daemon passes it on its standard input, so that a close a client can make
wait (a connection carrying a lingering socket in its unread bytes) holds nothing of the
daemon's. Started as ``python -S -m secretd.closing``; it reads nothing it is passed.
"""

from __future__ import annotations

import os
import signal
import socket

from . import _linux


def main() -> None:
    # It goes with the daemon even mid-close; a daemon gone before this line closed the
    # channel, which ends the loop below once the descriptors already passed are closed.
    _linux.prctl(_linux.PR_SET_PDEATHSIG, signal.SIGKILL)
    channel = socket.socket(fileno=0)
    while True:
        message, fds, _, _ = socket.recv_fds(channel, 1, 1)
        if not message:
            return
        for fd in fds:
            os.close(fd)


if __name__ == "__main__":
    main()
