"""Reading inside an image's root file system: a path resolved with every symlink kept
inside the root, and ``--user`` looked up in the image's own ``/etc/passwd`` and
``/etc/group``.

A hostile image cannot make secretd read a host file while it looks up a user or a
command; the files read must be regular files of a bounded size (a FIFO at
``/etc/passwd`` must not hang a run).
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass

from ...errors import UsageError
from .base import ImageError

MAX_LINKS = 40
MAX_ID = 2**32 - 2  # (uid_t)-1 means "unchanged"
MAX_ACCOUNTS_FILE = 4 << 20  # bytes of the image's /etc/passwd or /etc/group


def in_root(root: str, path: str) -> str:
    """The host path of ``path`` inside ``root``, every symlink resolved inside ``root``
    (``..`` stops at the root, absolute links restart from it), as the container sees it.

    Raises:
        OSError: ELOOP after too many links.
    """
    pending = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    links = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        try:
            target = os.readlink(os.path.join(root, *resolved, part))
        except OSError:  # not a link, or not there: taken literally
            resolved.append(part)
            continue
        links += 1
        if links > MAX_LINKS:
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
        if target.startswith("/"):
            resolved = []
        pending = [p for p in target.split("/") if p not in ("", ".")] + pending
    return os.path.join(root, *resolved)


def _entries(root: str, path: str) -> list[list[str]]:
    """The colon-separated lines of the image's ``path`` ([] when it has none).

    Raises:
        ImageError: it is not a regular file (a FIFO, a device) or is too large.
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(in_root(root, path), flags)
    except OSError:
        return []
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ImageError(f"the image's {path} is not a regular file",
                             "the image is damaged or hostile")
        data = fh.read(MAX_ACCOUNTS_FILE + 1)
    if len(data) > MAX_ACCOUNTS_FILE:
        raise ImageError(f"the image's {path} is larger than {MAX_ACCOUNTS_FILE} bytes",
                         "the image is damaged or hostile")
    text = data.decode("utf-8", errors="replace")
    return [line.split(":") for line in text.split("\n") if not line.startswith("#")]


@dataclass(frozen=True)
class User:
    uid: int
    gid: int
    groups: tuple[int, ...] = ()
    home: str = "/"


def lookup_user(root: str, text: str) -> User:
    """``--user``/the image's User, as Docker resolves it against the image's files:
    names must exist there; a numeric uid without an entry runs with gid 0. Lines whose
    ids are not numbers are skipped, as the C library skips them.

    Raises:
        UsageError: a user or group name the image does not know, an id out of range.
    """
    if not text:
        text = "0"
    user_text, _, group_text = text.partition(":")
    passwd = [e for e in _entries(root, "/etc/passwd")
              if len(e) >= 7 and _is_id(e[2]) and _is_id(e[3])]
    uid_given = _number(user_text, "uid")
    match = [e for e in passwd if (e[2] if uid_given is not None else e[0]) == user_text]
    if not match and uid_given is None:
        raise UsageError(f"unable to find user {user_text}: no matching entries in passwd file",
                         "give a numeric uid or a user the image defines")
    name, uid, gid, home = (
        (match[0][0], int(match[0][2]), int(match[0][3]), match[0][5] or "/")
        if match else ("", uid_given or 0, 0, "/")
    )
    groups = [e for e in _entries(root, "/etc/group") if len(e) >= 4 and _is_id(e[2])]
    if group_text:
        gid_given = _number(group_text, "gid")
        found = [e for e in groups if (e[2] if gid_given is not None else e[0]) == group_text]
        if not found and gid_given is None:
            raise UsageError(f"unable to find group {group_text}: no matching entries in group "
                             "file", "give a numeric gid or a group the image defines")
        gid = int(found[0][2]) if found else gid_given or 0
    member = [e for e in groups if name and name in e[3].split(",") and int(e[2]) != gid]
    extra = tuple(int(e[2]) for e in member)
    return User(uid, gid, extra, home)


def _is_id(text: str) -> bool:
    return text.isascii() and text.isdigit() and int(text) <= MAX_ID


def _number(text: str, what: str) -> int | None:
    """``text`` as an id when it is a number (ASCII digits), None when it is a name.

    Raises:
        UsageError: a number too large to be an id.
    """
    if not (text.isascii() and text.isdigit()):
        return None
    if int(text) > MAX_ID:
        raise UsageError(f"{what} {text[:20]} is out of range", f"ids go up to {MAX_ID}")
    return int(text)
