"""Read a file a user named (``file:``, ``dotenv:``, ``--env-file``) without being led astray.

Every such read takes a regular file only, and at most ``LIMIT`` bytes: a FIFO would
block the reader forever, ``/dev/zero`` would never end. The file is first opened with
``O_PATH`` (which opens nothing a device driver sees) and looked at; only a regular file is
then opened for reading, non-blocking, and must be the same inode.

The daemon reads on behalf of its callers, with root's rights, so it adds two rules
(``reading_for``): it walks the path one component at a time with ``O_NOFOLLOW``, so no
symbolic link anywhere in it is followed, and for a caller other than root or itself it
delivers a file the caller could not read itself only when the caller cannot have changed
where the path leads: no directory on the way may be the caller's, or writable by it
(a sticky directory such as ``/tmp`` counts only through the caller's own entries, which
the next step checks). A caller can then swap a path it controls for nothing it could not
already read. The checks use the descriptors the walk holds, so a rename during the walk
changes nothing. ``openat2(RESOLVE_NO_SYMLINKS)`` is not used: the caller checks need every
directory's descriptor anyway, which the walk has and one ``openat2`` call would not give.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass

from .errors import UsageError

# The store's MAX_VALUE (Docker Swarm's limit), repeated so that reading a file does not
# import the store and its cryptography; tests/run/test_file_sources.py pins them equal.
LIMIT = 500 * 1024

_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFLNK: "a symbolic link",
}
_ACL = "system.posix_acl_access"


@dataclass(frozen=True)
class Caller:
    """Whom the daemon reads for: ``trusted`` for root and the daemon's own user."""

    uid: int
    groups: frozenset[int]
    trusted: bool


_caller: ContextVar[Caller | None] = ContextVar("secretd_file_caller", default=None)


@contextlib.contextmanager
def reading_for(uid: int, groups: Iterable[int], trusted: bool) -> Iterator[None]:
    """Within this block (this thread), files are read for the daemon's caller ``uid``:
    no symbolic links, and unless ``trusted``, the caller checks of the module docstring."""
    token = _caller.set(Caller(uid, frozenset(groups), trusted))
    try:
        yield
    finally:
        _caller.reset(token)


def current_caller() -> Caller | None:
    """Whom files are read for now (``None``: secretd's own user). A value read under one
    caller's checks must not reach another: caches key their entries by it."""
    return _caller.get()


def read_file(path: str | os.PathLike[str], limit: int = LIMIT) -> bytes:
    """The contents of the regular file at ``path``, smaller than ``limit`` bytes.

    Raises:
        OSError: the kernel's (``FileNotFoundError``, ``PermissionError``, ...), or a
            refusal whose ``strerror`` says why: not a regular file, too large, a symbolic
            link in a path the daemon reads, a file a caller could not read itself.
    """
    fd = open_file(path)
    try:
        return read_fd(fd, limit)
    finally:
        os.close(fd)


def open_file(path: str | os.PathLike[str]) -> int:
    """A descriptor open for reading on the regular file at ``path``, by ``read_file``'s
    rules (``os.fstat`` it to tell whether it changed without reading it); the caller
    closes it.

    Raises:
        OSError: as ``read_file``.
    """
    caller = _caller.get()
    if caller is None:  # secretd reads for its own user: the kernel checks every right
        return _open_regular(os.fspath(path), None, follow=True)
    return _walk(os.path.abspath(path), caller)


def decode(data: bytes, where: str) -> str:
    """``data`` as UTF-8 text; the error names ``where`` and the first bad line."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise UsageError(f"{where} is not UTF-8 text (line {line})", "save it as UTF-8") from None


def _walk(path: str, caller: Caller) -> int:
    """Open ``path`` (absolute) one component at a time, following no symbolic link;
    return a descriptor open for reading, after the caller checks."""
    *dirs, name = [part for part in path.split("/") if part not in ("", ".")] or ["."]
    changeable: str | None = None  # the first directory on the way the caller could change
    fd = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    seen = "/"
    try:
        for part in [*dirs, None]:
            if not caller.trusted and changeable is None and _changeable(fd, caller):
                changeable = seen
            if part is None:
                break
            seen = os.path.join(seen, part)
            flags = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
            try:
                next_fd = os.open(part, flags, dir_fd=fd)
            except NotADirectoryError:
                _refuse_link(fd, part, seen)
                raise
            os.close(fd)
            fd = next_fd
        file_fd = _open_regular(name, fd, follow=False)
    finally:
        os.close(fd)
    if caller.trusted or changeable is None or _may_read(file_fd, caller):
        return file_fd
    os.close(file_fd)
    raise PermissionError(
        errno.EACCES,
        f"uid {caller.uid} may not read it, and could have changed {changeable!r} to lead to it",
    )


def _open_regular(name: str, dir_fd: int | None, follow: bool) -> int:
    """Open ``name`` for reading, non-blocking, only once ``O_PATH`` showed a regular file
    (a device is never opened: opening some, such as a watchdog, does something)."""
    nofollow = 0 if follow else os.O_NOFOLLOW
    probe = os.open(name, os.O_PATH | os.O_CLOEXEC | nofollow, dir_fd=dir_fd)
    try:
        first = os.fstat(probe)
    finally:
        os.close(probe)
    _check_regular(first.st_mode)
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC | nofollow
    fd = os.open(name, flags, dir_fd=dir_fd)
    now = os.fstat(fd)
    if (now.st_dev, now.st_ino) != (first.st_dev, first.st_ino) or not stat.S_ISREG(now.st_mode):
        os.close(fd)
        raise OSError(errno.EAGAIN, "it was replaced while being opened; try again")
    return fd


def _check_regular(mode: int) -> None:
    if stat.S_ISLNK(mode):
        raise OSError(errno.ELOOP, _LINK)
    if not stat.S_ISREG(mode):
        kind = _KINDS.get(stat.S_IFMT(mode), "not a file")
        raise OSError(errno.EINVAL, f"it is {kind}, not a regular file")


_LINK = "it is a symbolic link, which the daemon does not follow: bind the real path"


def _refuse_link(dir_fd: int, part: str, seen: str) -> None:
    """Say which component is a symbolic link, when that is why it is not a directory."""
    try:
        mode = os.stat(part, dir_fd=dir_fd, follow_symlinks=False).st_mode
    except OSError:
        return
    if stat.S_ISLNK(mode):
        raise OSError(errno.ELOOP, f"{seen!r} {_LINK.removeprefix('it ')}")


def read_fd(fd: int, limit: int = LIMIT) -> bytes:
    """The rest of the open file ``fd``, smaller than ``limit`` bytes (else ``EFBIG``)."""
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = os.read(fd, min(limit - size, 1 << 16))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
    raise OSError(
        errno.EFBIG,
        f"it is {limit // 1024} KiB or larger: secretd reads files smaller than {limit} bytes "
        "(Docker Swarm's limit for a secret)",
    )


def _class_bits(st: os.stat_result, caller: Caller, has_acl: bool) -> int:
    """The rwx bits that apply to ``caller``; with an ACL, the group class (its mask) is
    counted as the caller's too, since a named entry may grant it up to that much."""
    if st.st_uid == caller.uid:
        return 0o7  # the owner may chmod
    bits = st.st_mode & 0o7
    if st.st_gid in caller.groups or has_acl:
        bits |= st.st_mode >> 3 & 0o7
    return bits


def _changeable(dir_fd: int, caller: Caller) -> bool:
    """Whether ``caller`` can change what the names in this directory lead to."""
    st = os.fstat(dir_fd)
    if st.st_uid == caller.uid:
        return True
    if st.st_mode & stat.S_ISVTX:  # only its own entries, and the walk checks each one
        return False
    return _class_bits(st, caller, _has_acl(dir_fd)) & 0o3 == 0o3  # write and search


def _may_read(fd: int, caller: Caller) -> bool:
    """Whether ``caller`` could read the open file itself. An ACL could deny a user the
    mode bits allow, so a file with one counts as readable for its owner only."""
    st = os.fstat(fd)
    if _has_acl(fd):
        return st.st_uid == caller.uid
    return bool(_class_bits(st, caller, has_acl=False) & 0o4)


def _has_acl(fd: int) -> bool:
    """Whether the inode has an access ACL (through /proc: ``O_PATH`` descriptors have
    no xattr calls); when that cannot be told, assume it has one (the stricter answer)."""
    try:
        os.getxattr(f"/proc/self/fd/{fd}", _ACL)
    except OSError as exc:
        return exc.errno not in (errno.ENODATA, errno.EOPNOTSUPP)
    return True
