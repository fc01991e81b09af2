"""Who may ask the daemon for what: peer credentials checked against ``[policy]``.

The caller is identified by the kernel (``SO_PEERCRED``, ``SO_PEERGROUPS``) before a byte
of its request is read. Root and the daemon's own uid may do anything; everyone else gets
what a ``[[policy.rules]]`` entry grants (secret names as fnmatch globs, and optionally
``run_as`` users), and store administration only through ``admin_users``/``admin_groups``:

    [policy]
    admin_users = ["alice"]
    admin_groups = ["secretd-admin"]

    [[policy.rules]]
    name = "web"
    users = ["nobody", "1000"]
    groups = ["www-data"]
    secrets = ["api_key", "web-*"]
    run_as = []

Every denial names the caller, the secret and the file the policy came from, and is logged.
"""

from __future__ import annotations

import fnmatch
import grp
import logging
import os
import pwd
import socket
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .config import Config
from .errors import AccessDenied, UsageError

log = logging.getLogger(__name__)

SO_PEERGROUPS = getattr(socket, "SO_PEERGROUPS", 59)  # Linux 4.13; Python lacks the name
UCRED = struct.Struct("3i")
MAX_GROUPS = 1024
POLICY_KEYS = {"admin_users", "admin_groups", "rules"}
RULE_KEYS = {"name", "users", "groups", "secrets", "run_as"}
HINT = "ask an administrator to grant it in a [[policy.rules]] entry of the daemon's config"


@dataclass(frozen=True)
class Peer:
    """The process at the other end of a connection, as the kernel reports it."""

    pid: int
    uid: int
    gid: int
    groups: tuple[int, ...]

    @property
    def user(self) -> str:
        try:
            return pwd.getpwuid(self.uid).pw_name
        except KeyError:
            return str(self.uid)

    def __str__(self) -> str:
        return f"uid {self.uid} ({self.user})"


def peer_of(sock: socket.socket) -> Peer:
    """The credentials of ``sock``'s peer, taken when it connected (not spoofable)."""
    pid, uid, gid = UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, UCRED.size))
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, SO_PEERGROUPS, 4 * MAX_GROUPS)
        groups = struct.unpack(f"{len(raw) // 4}I", raw[: len(raw) // 4 * 4])
    except OSError:  # ERANGE (more groups than we asked for) or an old kernel
        groups = ()
    return Peer(pid, uid, gid, tuple(sorted({gid, *groups})))


def _strings(value: Any, where: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str | int) else value
    if not isinstance(items, list) or not all(isinstance(i, str | int) for i in items):
        raise UsageError(f"{where} must be a list of names or numbers")
    return tuple(str(i) for i in items)


def _uids(entries: Iterable[str]) -> frozenset[str]:
    """User entries as uid strings ("*" kept); unknown names never match, and say so."""
    found = set()
    for entry in entries:
        if entry == "*" or entry.isdigit():
            found.add(entry)
            continue
        try:
            found.add(str(pwd.getpwnam(entry).pw_uid))
        except KeyError:
            log.warning("policy names unknown user %r; that entry matches nobody", entry)
    return frozenset(found)


def _gids(entries: Iterable[str]) -> frozenset[int]:
    found = set()
    for entry in entries:
        if entry.isdigit():
            found.add(int(entry))
            continue
        try:
            found.add(grp.getgrnam(entry).gr_gid)
        except KeyError:
            log.warning("policy names unknown group %r; that entry matches nobody", entry)
    return frozenset(found)


@dataclass(frozen=True)
class Rule:
    """One ``[[policy.rules]]`` entry: who (users or groups) may use which secrets."""

    name: str
    uids: frozenset[str]
    gids: frozenset[int]
    secrets: tuple[str, ...]
    run_as: frozenset[str]  # uids (as strings) or "*"

    def matches(self, peer: Peer) -> bool:
        return "*" in self.uids or str(peer.uid) in self.uids or bool(self.gids & set(peer.groups))

    def grants(self, key: str) -> bool:
        return any(fnmatch.fnmatchcase(key, pattern) for pattern in self.secrets)


class Policy:
    """The daemon's authorisation decisions; immutable once loaded.

    Args:
        rules: the ``[[policy.rules]]`` entries.
        admin_uids / admin_gids: who may administer the store besides the superusers.
        daemon_uid: the daemon's own uid, a superuser like root.
        source: where the policy came from, quoted in denials.
    """

    def __init__(
        self,
        rules: Sequence[Rule] = (),
        admin_uids: frozenset[str] = frozenset(),
        admin_gids: frozenset[int] = frozenset(),
        daemon_uid: int | None = None,
        source: str = "the daemon's config",
    ) -> None:
        self.rules = tuple(rules)
        self.admin_uids = admin_uids
        self.admin_gids = admin_gids
        self.daemon_uid = os.getuid() if daemon_uid is None else daemon_uid
        self.source = source

    @classmethod
    def from_config(cls, config: Config) -> Policy:
        """Read ``[policy]``.

        Raises:
            UsageError: an unknown key or a malformed entry, naming the file.
        """
        table: Mapping[str, Any] = config.policy
        source = next(
            (config.origins[k] for k in sorted(config.origins) if k.startswith("policy.")),
            "the daemon's config (no [policy] table)",
        )
        unknown = set(table) - POLICY_KEYS
        if unknown:
            raise UsageError(
                f"unknown key policy.{sorted(unknown)[0]} in {source}",
                f"known keys: {', '.join(sorted(POLICY_KEYS))}",
            )
        entries = table.get("rules", [])
        if not isinstance(entries, list):
            raise UsageError(f"policy.rules in {source} must be a list of [[policy.rules]] tables")
        rules = [_rule(entry, index, source) for index, entry in enumerate(entries, 1)]
        return cls(
            rules,
            _uids(_strings(table.get("admin_users", []), f"policy.admin_users in {source}")),
            _gids(_strings(table.get("admin_groups", []), f"policy.admin_groups in {source}")),
            source=source,
        )

    def is_superuser(self, peer: Peer) -> bool:
        """Root and the daemon's own user: they can read the daemon's config anyway."""
        return peer.uid in (0, self.daemon_uid)

    def may_administer(self, peer: Peer) -> bool:
        return (
            self.is_superuser(peer)
            or str(peer.uid) in self.admin_uids
            or bool(self.admin_gids & set(peer.groups))
        )

    def rules_for(self, peer: Peer) -> list[Rule]:
        return [rule for rule in self.rules if rule.matches(peer)]

    def check_connect(self, peer: Peer) -> None:
        """Refuse, before reading a request, a caller the policy grants nothing at all."""
        if self.may_administer(peer) or self.rules_for(peer):
            return
        self.deny(peer, "connect", f"policy in {self.source} grants {peer} nothing", HINT)

    def allows(self, peer: Peer, key: str) -> bool:
        return self.is_superuser(peer) or any(r.grants(key) for r in self.rules_for(peer))

    def check_secrets(self, peer: Peer, keys: Iterable[str]) -> None:
        """Raise for the first secret the caller may not use."""
        for key in keys:
            if not self.allows(peer, key):
                message = f"policy in {self.source} does not grant {peer} the secret {key!r}"
                self.deny(peer, key, message, HINT)

    def check_admin(self, peer: Peer, action: str) -> None:
        if not self.may_administer(peer):
            self.deny(
                peer,
                f"store {action}",
                f"policy in {self.source} does not let {peer} {action} secrets in the store",
                "ask an administrator to add you to policy.admin_users or policy.admin_groups",
            )

    def may_run_as(self, peer: Peer, uid: int | None = None, gid: int | None = None) -> bool:
        """Whether the caller may run (or own files) as ``uid``/``gid``: its own are
        always fine; others need a ``run_as`` entry naming the user (any group of the
        caller's is fine, other groups need ``"*"``)."""
        if self.is_superuser(peer):
            return True
        allowed = frozenset().union(*(rule.run_as for rule in self.rules_for(peer)))
        if "*" in allowed:
            return True
        uid_ok = uid in (None, peer.uid) or str(uid) in allowed
        return uid_ok and (gid is None or gid in peer.groups)

    def check_run_as(
        self, peer: Peer, what: str, uid: int | None = None, gid: int | None = None
    ) -> None:
        if not self.may_run_as(peer, uid, gid):
            self.deny(
                peer,
                what,
                f"policy in {self.source} does not allow {peer} to use {what}",
                "drop it (commands run as you), or ask for run_as in a [[policy.rules]] entry",
            )

    def deny(self, peer: Peer, what: str, message: str, hint: str) -> None:
        """Log a denial (who, what) and raise it; the message names the policy's file."""
        log.warning("denied uid=%d user=%s pid=%d request=%r", peer.uid, peer.user, peer.pid, what)
        raise AccessDenied(message, hint)


def _rule(entry: Any, index: int, source: str) -> Rule:
    where = f"[[policy.rules]] #{index} in {source}"
    if not isinstance(entry, dict):
        raise UsageError(f"{where} is not a table")
    unknown = set(entry) - RULE_KEYS
    if unknown:
        raise UsageError(
            f"unknown key {sorted(unknown)[0]!r} in {where}",
            f"known keys: {', '.join(sorted(RULE_KEYS))}",
        )
    if "users" not in entry and "groups" not in entry:
        raise UsageError(f"{where} names no users or groups", 'add users = ["NAME"]')
    return Rule(
        name=str(entry.get("name", f"#{index}")),
        uids=_uids(_strings(entry.get("users", []), f"users of {where}")),
        gids=_gids(_strings(entry.get("groups", []), f"groups of {where}")),
        secrets=_strings(entry.get("secrets", []), f"secrets of {where}"),
        run_as=_uids(_strings(entry.get("run_as", []), f"run_as of {where}")),
    )
