"""The terminal's foreground for host commands (sandbox and host runtimes): whether
secretd has it, and taking it back from the command's process group when it ends."""

from __future__ import annotations

import os
import signal


def in_foreground(tty: int) -> bool:
    """Whether we own ``tty``'s foreground; a daemon handed a client's terminal does not
    (it is not the daemon's controlling terminal, so ``tcgetpgrp`` fails with ENOTTY)."""
    try:
        return os.tcgetpgrp(tty) == os.getpgrp()
    except OSError:
        return False


def reclaim(tty: int) -> None:
    """The command's group had the terminal; take it back, as a shell does."""
    old = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        os.tcsetpgrp(tty, os.getpgrp())
    except OSError:
        pass
    finally:
        signal.signal(signal.SIGTTOU, old)
