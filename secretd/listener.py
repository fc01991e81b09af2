"""Where the daemon listens: its own socket, bound with a mode and group before it accepts
anything, or the one systemd passed (socket activation).

Apart from ``protocol.py``, which frames what travels on the socket once it is there.
"""

from __future__ import annotations

import grp
import os
import socket
import stat
from pathlib import Path

from . import trust
from .errors import UsageError


def listen(path: Path, mode: int = 0o660, group: str | None = "secretd") -> socket.socket:
    """Bind and listen at ``path`` (when systemd passed no socket: see ``inherited``).

    The socket gets ``mode`` and ``group`` (when that group exists) before it accepts
    anything; it is created under a 0177 umask so it is never reachable more widely, even
    for an instant.

    Raises:
        UsageError: another daemon answers at ``path``, or ``path`` is not a socket.
        Untrusted: the socket's directory is a link, or someone else could change it.
    """
    trust.runtime_dir(path.parent, "socket directory")
    _remove_stale(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(str(path))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {path}: {exc.strerror}") from None
    finally:
        os.umask(old)
    try:
        gid = grp.getgrnam(group).gr_gid if group else None
    except KeyError:
        gid = None
    if gid is not None:
        os.chown(path, -1, gid)
    os.chmod(path, mode)
    sock.listen(128)
    return sock


def inherited() -> socket.socket | None:
    """The socket systemd passed (``LISTEN_FDS``, first descriptor 3), if it passed one."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()) or not os.environ.get("LISTEN_FDS"):
        return None
    for var in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(var, None)
    sock = socket.socket(fileno=3)
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
        raise UsageError(
            "the socket systemd passed is not a Unix stream socket", "fix secretd.socket"
        )
    os.set_inheritable(3, False)  # commands the daemon forks must never accept on it
    return sock


def _remove_stale(path: Path) -> None:
    if not path.exists() and not path.is_symlink():
        return
    if not stat.S_ISSOCK(path.lstat().st_mode):
        raise UsageError(f"{path} exists and is not a socket", "remove it or choose --socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink()  # nobody listens: a previous daemon died without cleaning up
        return
    finally:
        probe.close()
    raise UsageError(f"another secretd daemon is listening on {path}", "stop it or choose --socket")
