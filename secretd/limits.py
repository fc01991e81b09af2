"""What one caller may take from the daemon: connections, time to speak, secrets per run.

A shared daemon must not be exhausted by one local user. Connections are counted per uid
and in total; root, the daemon's own uid and the policy's administrators are always
served, so a user holding every slot cannot lock them out. A client has ``read_timeout``
seconds to send its request. A run may ask for ``max_secrets_per_run`` secrets (an
``env:`` pattern counts each variable it matches) and ``max_bytes_per_run`` bytes of
files, and one uid's running commands together hold at most ``max_bytes_per_user``: the
daemon keeps each value in locked memory while its command runs. Every limit is a
``[daemon]`` setting; each refusal names the one to raise.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from .errors import LaunchError, SecretdError, UsageError

MIB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """The ``[daemon]`` limits, with their defaults."""

    max_connections: int = 256
    max_connections_per_user: int = 32
    read_timeout: float = 5.0
    max_secrets_per_run: int = 256
    max_bytes_per_run: int = 16 * MIB
    max_bytes_per_user: int = 64 * MIB

    @classmethod
    def from_config(cls, table: Mapping[str, Any]) -> Limits:
        """The limits a ``[daemon]`` table sets (``config`` checked their types); the
        defaults for the others."""
        return cls(**{f.name: table[f.name] for f in fields(cls) if f.name in table})


class Connections:
    """Open connections per uid and in total; decides whether to serve a new one."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._open: Counter[int] = Counter()
        self._lock = threading.Lock()

    def admit(self, uid: int, privileged: bool) -> SecretdError | None:
        """Count a connection of ``uid`` and return ``None``, or return why it is refused.

        Args:
            privileged: root, the daemon's uid or an administrator: never refused.
        """
        limits = self.limits
        with self._lock:
            if not privileged and self._open[uid] >= limits.max_connections_per_user:
                return LaunchError(
                    f"uid {uid} already has {self._open[uid]} connections to the secretd "
                    "daemon, its limit",
                    "close some, or raise [daemon] max_connections_per_user in its config",
                )
            if not privileged and self._open.total() >= limits.max_connections:
                return LaunchError(
                    f"the secretd daemon is serving {limits.max_connections} connections, "
                    "its limit",
                    "try again later, or raise [daemon] max_connections in its config",
                )
            self._open[uid] += 1
        return None

    def hold(self, uid: int) -> None:
        """Count one more of ``uid``'s slots as taken, whatever the limits (a close that
        may wait holds one until it is done: ``closer.py``); ``release`` gives it back."""
        with self._lock:
            self._open[uid] += 1

    def release(self, uid: int) -> None:
        with self._lock:
            self._open[uid] -= 1
            if self._open[uid] <= 0:
                del self._open[uid]


class Budget:
    """Bytes of secrets held by each uid's running commands."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._held: Counter[int] = Counter()
        self._lock = threading.Lock()

    def check_count(self, count: int) -> None:
        """Raises UsageError: a run asks for more references than a run may have."""
        most = self.limits.max_secrets_per_run
        if count > most:
            raise UsageError(
                f"this run asks for {count} secrets; the daemon allows {most} per run",
                "raise [daemon] max_secrets_per_run in the daemon's config",
            )

    def reserve(self, uid: int, size: int) -> None:
        """Count ``size`` bytes against ``uid`` until ``release``.

        Raises:
            UsageError: one run's files exceed ``max_bytes_per_run``.
            LaunchError: with them, the uid's running commands would exceed
                ``max_bytes_per_user``.
        """
        limits = self.limits
        if size > limits.max_bytes_per_run:
            raise UsageError(
                f"the secrets of this run come to {size} bytes; the daemon allows "
                f"{limits.max_bytes_per_run} per run",
                "raise [daemon] max_bytes_per_run in the daemon's config",
            )
        with self._lock:
            held = self._held[uid]
            if held + size > limits.max_bytes_per_user:
                raise LaunchError(
                    f"uid {uid}'s running commands hold {held} bytes of secrets; this run's "
                    f"{size} more would pass the daemon's {limits.max_bytes_per_user} per user",
                    "wait for a run to end, or raise [daemon] max_bytes_per_user in the "
                    "daemon's config",
                )
            self._held[uid] += size

    def release(self, uid: int, size: int) -> None:
        with self._lock:
            self._held[uid] -= size
            if self._held[uid] <= 0:
                del self._held[uid]
