"""Processes secretd started or recorded, known by identity rather than by pid alone.

A pid is reused once its process is gone; with the process's start time (field 22 of
``/proc/PID/stat``, in clock ticks since boot) it names one process for good. The oci
runtime's container records and the engines' mount notes both name their owner this way.
"""

from __future__ import annotations

import math
import os
import signal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import subprocess


def start_time(pid: int) -> int:
    """The start time of ``pid`` in clock ticks since boot; 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return int(fh.read().rpartition(b")")[2].split()[19])
    except (OSError, ValueError, IndexError):
        return 0


def alive(pid: int, start: int) -> bool:
    """Whether the process that had ``start`` as its start time still runs as ``pid``."""
    return pid > 0 and start_time(pid) == start


def kill_and_reap(pid: int) -> None:
    """End a child of ours at once, whatever it was doing, and collect its status, so
    that no zombie is left (a child already gone is fine)."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    os.waitpid(pid, 0)


def exit_status(code: int) -> int:
    """A child's return code as a shell reports it, which ``run`` exits with: its exit
    code, or 128 + the signal that killed it (``Popen`` and ``waitstatus_to_exitcode``
    give that signal as a negative number)."""
    return 128 - code if code < 0 else code


def pidfd_ended(pidfd: int, timeout: float | None) -> bool:
    """Whether the process of ``pidfd`` ends within ``timeout`` seconds (``None``: wait).
    ``poll``, not ``select``: a daemon serving many runs holds descriptors past 1024."""
    import select

    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return bool(poller.poll(None if timeout is None else max(0, math.ceil(timeout * 1000))))


def reaped_status(pid: int, pidfd: int, timeout: float | None) -> int | None:
    """The ``exit_status`` of child ``pid`` (its ``pidfd``) once it ends within
    ``timeout``, reaped; None if it runs on."""
    if not pidfd_ended(pidfd, timeout):
        return None
    _, raw = os.waitpid(pid, 0)
    return exit_status(os.waitstatus_to_exitcode(raw))


def wait_status(process: subprocess.Popen[bytes], timeout: float | None) -> int | None:
    """``process``'s ``exit_status`` once it ends within ``timeout``; None if it runs on
    (the Container protocol's ``wait``)."""
    import subprocess  # here: the sandbox waits on a pidfd, without it (~1 ms of imports)

    try:
        return exit_status(process.wait(timeout))
    except subprocess.TimeoutExpired:
        return None
