"""What a finished run may not leave behind: a mount of its secrets directory in any
namespace, or a process of its command."""

from __future__ import annotations

import os


def _each_process() -> list[str]:
    return [entry for entry in os.listdir("/proc") if entry.isdigit()]


def mounted_anywhere(path: str) -> list[int]:
    """Pids of every process that has something mounted at ``path``, in any namespace."""
    found = []
    for pid in _each_process():
        try:
            with open(f"/proc/{pid}/mountinfo") as fh:
                if any(line.split()[4] == path for line in fh):
                    found.append(int(pid))
        except OSError:
            continue
    return found


def processes_with(marker: str) -> list[int]:
    """Pids of every process whose command line holds ``marker``."""
    found = []
    for pid in _each_process():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if marker.encode() in fh.read():
                    found.append(int(pid))
        except OSError:
            continue
    return found
