"""``--user NAME|UID[:GROUP|GID]`` resolved against the host's user database."""

from __future__ import annotations

import grp
import os
import pwd
from dataclasses import dataclass

from .errors import UsageError


@dataclass(frozen=True)
class Identity:
    """Who the command runs as. ``groups`` of ``None`` keeps the current ones."""

    uid: int
    gid: int
    groups: tuple[int, ...] | None = None


def _lookup_user(text: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwuid(int(text)) if text.isdigit() else pwd.getpwnam(text)
    except KeyError:
        if text.isdigit():
            return None
        raise UsageError(f"no such user {text!r}", "give a user name or a numeric uid") from None


def _lookup_group(text: str) -> int:
    if text.isdigit():
        return int(text)
    try:
        return grp.getgrnam(text).gr_gid
    except KeyError:
        raise UsageError(f"no such group {text!r}", "give a group name or a numeric gid") from None


def resolve_user(spec: str | None, root: bool) -> Identity:
    """The identity for ``--user``; the caller's own when not given.

    A uid without a passwd entry and without ``:GID`` runs with gid equal to the uid (not
    Docker's gid 0: on the host that group is root's). Only root may become someone else.
    """
    if not spec:
        return Identity(os.getuid(), os.getgid())
    user_text, _, group_text = spec.partition(":")
    entry = _lookup_user(user_text)
    uid = entry.pw_uid if entry else int(user_text)
    gid = _lookup_group(group_text) if group_text else (entry.pw_gid if entry else uid)
    if not root:
        if (uid, gid) != (os.getuid(), os.getgid()):
            raise UsageError(
                f"--user {spec}: only root can run commands as another user",
                "drop --user or run secretd as root (or through the daemon)",
            )
        return Identity(uid, gid)
    groups = tuple(os.getgrouplist(entry.pw_name, gid)) if entry else ()
    return Identity(uid, gid, groups)
