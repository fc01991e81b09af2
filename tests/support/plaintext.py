"""Looking for a secret value written to disk, as an attacker with the host's files would.

Only regular files are read, opened without following a link and without blocking, so
that other tests' FIFOs and sockets in /tmp are never opened.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path


def files_holding(
    needles: Sequence[bytes],
    roots: Iterable[Path],
    since: float = 0.0,
    skip: Collection[str] = (),
    one_device: bool = False,
    max_size: int | None = None,
) -> list[str]:
    """Regular files under ``roots`` changed since ``since`` whose bytes hold any of
    ``needles``.

    Args:
        skip: file names not to read (the test's own source files that hold the value).
        one_device: do not enter other filesystems below a root (a dead FUSE mount
            would answer ENOTCONN, other helpers' engines hold their own mounts).
        max_size: files larger than this are not read.
    """
    found = []
    for root in roots:
        device = os.stat(root).st_dev if one_device else 0
        for folder, dirs, names in os.walk(root):  # a root that does not exist holds nothing
            if one_device:
                dirs[:] = [d for d in dirs if _on_device(os.path.join(folder, d), device)]
            for name in names:
                path = os.path.join(folder, name)
                try:
                    info = os.lstat(path)
                    if (
                        name in skip
                        or not stat.S_ISREG(info.st_mode)
                        or info.st_mtime < since
                        or (max_size is not None and info.st_size > max_size)
                    ):
                        continue
                    if any(needle in _read(path) for needle in needles):
                        found.append(path)
                except OSError:
                    continue
    return found


def _read(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    with open(fd, "rb") as fh:
        return fh.read()


def _on_device(path: str, device: int) -> bool:
    try:
        return os.stat(path, follow_symlinks=False).st_dev == device
    except OSError:
        return False
