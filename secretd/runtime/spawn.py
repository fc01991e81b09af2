"""The sandbox's set-up started with ``posix_spawn`` of a small compiled helper
(``spawn.c``, built by ``tools/setup-host.sh`` as ``secretd-spawn`` beside it), instead
of a fork of secretd's own process.

A fork copies the page tables of a large Python process (in the daemon, one whose memory
is locked), and the child then runs Python, touching pages the parent shares with it,
until it execs: ~5 ms per run on a 2-core machine. ``posix_spawn`` starts the helper with
the parent's memory shared until the exec, and the helper makes the same system calls as
``nsinit.child`` (same order, same failure lines on the socket), so ``sandbox.py`` reads
its messages the same way. Without the binary (not compiled on this host), the sandbox
forks as before.
"""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

from .nsinit import Plan

HELPER = Path(__file__).with_name("secretd-spawn")
SOCKET_FD = 3  # where spawn.c reads its socket to secretd


def helper() -> str | None:
    """The compiled helper's path, or ``None`` when this host has none (then: fork)."""
    return str(HELPER) if os.access(HELPER, os.X_OK) else None


def arguments(path: str, plan: Plan) -> list[str]:
    """The helper's command line for ``plan`` (the format is at the top of spawn.c)."""
    identity = plan.identity
    groups = "-" if identity.groups is None else ",".join(str(g) for g in identity.groups)
    switches = (("u", plan.userns), ("s", plan.new_session), ("x", plan.exec_configs))
    flags = "".join(letter for letter, on in switches if on) or "-"
    binds = [part for pair in plan.binds for part in pair]
    return [
        path, str(plan.parent), flags, str(plan.size), plan.secrets_dir, plan.init,
        plan.workdir or "", str(identity.uid), str(identity.gid), groups, plan.source or "",
        str(len(plan.binds)), *binds, "--", *plan.command,
    ]  # fmt: skip


def start(path: str, plan: Plan, sock: socket.socket) -> int:
    """Start the helper with the command's stdio as 0-2 and ``sock`` as 3; its pid.

    Raises:
        OSError: it could not be started.
    """
    actions = [(os.POSIX_SPAWN_DUP2, fd, target) for target, fd in enumerate(plan.stdio)]
    actions.append((os.POSIX_SPAWN_DUP2, sock.fileno(), SOCKET_FD))
    return os.posix_spawn(
        path,
        arguments(path, plan),
        plan.env,
        file_actions=actions,
        setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),  # Python ignores them; commands must not
        setsigmask=(),
    )
