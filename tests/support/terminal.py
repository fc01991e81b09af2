"""Run a command on a pseudo-terminal, as a user at a terminal would (no pytest here)."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import termios


def on_a_terminal(
    argv: list[str], env: dict[str, str], cwd: str | None = None, columns: int = 123
) -> tuple[int, bytes]:
    """Run ``argv`` with a new pty (40 rows, ``columns`` wide) as its stdin, stdout and
    stderr; its exit status and everything it wrote. Killed after 60 s of silence."""
    pid, master = pty.fork()
    if pid == 0:
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
        if cwd is not None:
            os.chdir(cwd)
        os.execve(argv[0], argv, env)
    seen = b""
    while True:
        if not select.select([master], [], [], 60)[0]:
            os.kill(pid, signal.SIGKILL)
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: every process holding the terminal has left
            break
        if not chunk:
            break
        seen += chunk
    _, status = os.waitpid(pid, 0)
    os.close(master)
    return os.waitstatus_to_exitcode(status), seen
