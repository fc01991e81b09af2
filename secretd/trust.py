"""Who controls a path or a socket: the checks that keep a local user from posing as the daemon.

A directory is trusted when nobody but the caller or root can change what it holds: it
belongs to one of them and neither its group nor others may write to it. Along the way
(never as the last directory) a sticky directory of root's, such as ``/tmp``, is fine too:
others may add entries there but not replace ours. Symbolic links on the way are followed
only when the caller or root made them; the last directory must not be one.

The client checks a daemon socket's directories, the socket itself and the process that
listens on it (``SO_PEERCRED``: root or the caller) before it sends a byte. The daemon and
every run create the runtime directory through ``runtime_dir``, which refuses one that
someone else made first (``/tmp/secretd-<uid>`` is anyone's to create).

The thin client (``thin.py``) runs these checks too, so this module imports nothing
beyond ``errors`` and modules Python has loaded before ``main`` (``_socket``, not
``socket``; paths as strings, not ``pathlib``): a few milliseconds per ``secretd run``.
"""

from __future__ import annotations

import os
import pwd
import stat
import struct
from _socket import SO_PEERCRED, SOL_SOCKET

from .errors import Untrusted

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from _socket import socket
    from pathlib import Path

    StrPath = str | os.PathLike[str]

MAX_LINKS = 40
UCRED = struct.Struct("3i")
RUNTIME_HINT = "set XDG_RUNTIME_DIR or SECRETD_RUNTIME_DIR to a directory of your own"
_PATH_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


def trusted_uids() -> frozenset[int]:
    """The owners a path or a daemon may have: root and the caller."""
    return frozenset({0, os.geteuid()})


def describe(uid: int) -> str:
    """``uid 65534 (nobody)``: how errors name an owner."""
    try:
        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return f"uid {uid}"


def check_directory(directory: StrPath) -> None:
    """Walk ``directory`` from ``/`` without trusting what anyone else could have changed.

    Each component is opened with ``O_PATH | O_NOFOLLOW`` below the descriptor of its
    parent and judged by ``fstat``, so the names checked are the names used.

    Raises:
        Untrusted: a directory or link on the way belongs to someone else or is writable
            by others; the last directory is a link or is writable by others.
        OSError: a component is missing or is not a directory.
    """
    path = os.path.join(os.getcwd(), directory)  # as given when it is absolute
    pending = list(reversed(path.split("/")))
    fds = [os.open("/", _PATH_FLAGS | os.O_DIRECTORY)]
    names = [""]
    try:
        _judge(os.fstat(fds[0]), "/", last=False)
        links = 0
        while pending:
            name = pending.pop()
            if name in ("", "."):
                continue
            if name == "..":
                if len(fds) > 1:
                    os.close(fds.pop())
                    names.pop()
                continue
            where = "/".join([*names, name])
            fd = os.open(name, _PATH_FLAGS, dir_fd=fds[-1])
            info = os.fstat(fd)
            if stat.S_ISLNK(info.st_mode):
                os.close(fd)
                links += 1
                target = os.readlink(name, dir_fd=fds[-1])
                _judge_link(info, where, last=not pending, too_many=links > MAX_LINKS)
                if target.startswith("/"):
                    while len(fds) > 1:
                        os.close(fds.pop())
                        names.pop()
                pending.extend(reversed([p for p in target.split("/") if p]))
                continue
            fds.append(fd)
            names.append(name)
            if not stat.S_ISDIR(info.st_mode):
                raise NotADirectoryError(20, "Not a directory", where)
            _judge(info, where, last=False)
        _judge(os.fstat(fds[-1]), "/".join(names) or "/", last=True)  # where ``..`` led too
    finally:
        for fd in fds:
            os.close(fd)


def _judge(info: os.stat_result, where: str, last: bool) -> None:
    if info.st_uid not in trusted_uids():
        raise Untrusted(f"{where} belongs to {describe(info.st_uid)}, not to you or root")
    writable = info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    shared = info.st_mode & stat.S_ISVTX and info.st_uid == 0 and not last
    if writable and not shared:
        who = "others" if info.st_mode & stat.S_IWOTH else "its group"
        raise Untrusted(f"{where} is writable by {who} (mode {stat.S_IMODE(info.st_mode):04o})")


def _judge_link(info: os.stat_result, where: str, last: bool, too_many: bool) -> None:
    if last:
        raise Untrusted(f"{where} is a symbolic link")
    if info.st_uid not in trusted_uids():
        raise Untrusted(f"{where} is a symbolic link made by {describe(info.st_uid)}")
    if too_many:
        raise Untrusted(f"{where}: more than {MAX_LINKS} symbolic links")


def check_socket(path: StrPath) -> None:
    """Whether a daemon found at ``path`` could only have been put there by root or the caller.

    Raises:
        OSError: nothing is at ``path`` (no daemon: not an attack).
        Untrusted: its directories, or the socket itself, belong to someone else.
    """
    os.lstat(path)  # nothing there is no daemon, not a reason to warn
    check_directory(os.path.dirname(path))
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        raise Untrusted(f"{path} is a symbolic link")
    if info.st_uid not in trusted_uids():
        raise Untrusted(f"{path} belongs to {describe(info.st_uid)}, not to you or root")


def peer_uid(sock: socket) -> int:
    """The uid of the process that listens (or connected) at the other end of ``sock``."""
    _, uid, _ = UCRED.unpack(sock.getsockopt(SOL_SOCKET, SO_PEERCRED, UCRED.size))
    return int(uid)


def check_peer(sock: socket, path: StrPath) -> None:
    """Raises Untrusted unless root or the caller listens at the other end of ``sock``."""
    uid = peer_uid(sock)
    if uid not in trusted_uids():
        raise Untrusted(f"{path} is served by {describe(uid)}, not by you or root")


def runtime_dir(path: Path, what: str = "runtime directory") -> Path:
    """Create ``path`` (mode 0700; 0755 for root, whose socket others reach) unless it
    exists, then check that only the caller or root controls it.

    Args:
        what: how the error names it ("socket directory" for the daemon's).

    Raises:
        Untrusted: it (or a directory above it) belongs to someone else, is writable by
            others or is a symbolic link; the message says how to choose another.
    """
    mode = 0o755 if os.geteuid() == 0 else 0o700
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            os.mkdir(path, mode)  # never follows a link planted at ``path``
        except FileExistsError:
            pass
        check_directory(path)
    except Untrusted as exc:
        raise Untrusted(f"refusing the {what} {path}: {exc.message}", RUNTIME_HINT) from None
    except OSError as exc:
        raise Untrusted(f"cannot make the {what} {path}: {exc.strerror}", RUNTIME_HINT) from None
    return path
