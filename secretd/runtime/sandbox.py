"""The sandbox runtime: a host command in mount and PID namespaces of its own, no image.

A forked child unshares a mount namespace (and a user namespace when the caller is not
root, mapping the caller to itself), then clones the sandbox's init: the first process of
a new PID namespace, made a child of secretd itself (``CLONE_PARENT``) so that the forked
child can leave at once. The init mounts a fresh ``/proc`` and a tmpfs, hands a directory
descriptor of the tmpfs to secretd, which writes the files, binds the ``secrets/`` part
over the secrets directory read-only, drops privileges and execs ``tini``, which starts
the command, forwards signals to its process group and reaps orphans (as ``docker run
--init`` does). When tini exits (the command ended, or secretd killed it) the kernel kills
every process left in the namespace; tini dies with secretd (``PR_SET_PDEATHSIG``). So no
process, and with none the mount, outlives the run. The host never sees the mount, and
secretd's descriptor lets it rotate files meanwhile.

Missing mount points (``/run/secrets`` on a host that has none) are never created on the
host: the nearest existing directory is shadowed inside the namespace by a read-only
tmpfs holding bind mounts of everything it had, plus the new mount point.
"""

from __future__ import annotations

import array
import dataclasses
import logging
import os
import signal
import socket
import struct
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..ci import CI
from ..ci import detect as detect_ci
from ..config import Config
from ..errors import (
    CommandNotFound,
    CommandNotRunnable,
    LaunchError,
    MountError,
    SecretdError,
    UsageError,
)
from ..mount.tmpfs import fill, layout, uses_configs
from ..spec import DEFAULT_SECRETS_DIR, Container, RunSpec, SecretFile, SecretMount, Stdio
from ..users import resolve_user
from . import spawn, terminal, which
from .nsinit import Plan, child
from .process import kill_and_reap, reaped_status

if TYPE_CHECKING:
    from ..mount.fuse import FuseMount

log = logging.getLogger(__name__)
INITS = ("tini-static", "tini")  # Debian's tini has both; the static one starts faster


class SandboxRefused(MountError):
    """The kernel or a security policy allows no namespace, or no mount in one, here: a
    container without CAP_SYS_ADMIN (Docker's seccomp profile refuses ``unshare``, its
    masked /proc a new one), or Ubuntu 24.04's AppArmor rule for unprivileged user
    namespaces. The message lists the ways out."""

    def __init__(self, text: str) -> None:
        super().__init__(
            f"{text} (namespaces and mounts are not allowed here: a container without "
            "CAP_SYS_ADMIN, a seccomp profile such as Docker's, or Ubuntu's AppArmor rule "
            "for unprivileged user namespaces)",
            "run with --no-sandbox (secrets in a private directory on /dev/shm, removed "
            "when the command ends; automatic when CI=true; docs/ci.md), or allow them "
            "(docker run --cap-add SYS_ADMIN --security-opt seccomp=unconfined "
            "--security-opt apparmor=unconfined; on Ubuntu: sysctl "
            "kernel.apparmor_restrict_unprivileged_userns=0)",
        )


FAILURES: dict[str, type[SecretdError]] = {
    "notfound": CommandNotFound,
    "noexec": CommandNotRunnable,
    "refused": SandboxRefused,
    "setup": MountError,
    "usage": UsageError,
}


class SandboxProcess:
    """A running sandboxed command (the Container protocol); ``pid`` is its tini's."""

    def __init__(
        self,
        pid: int,
        root_fd: int,
        owner: tuple[int, int],
        tty_fd: int | None,
        secrets_dir: str = DEFAULT_SECRETS_DIR,
    ):
        self.id = f"sandbox-{pid}"
        self.pid = pid
        self._pidfd = os.pidfd_open(pid)
        self._root_fd = root_fd
        self._owner = owner
        self._tty_fd = tty_fd
        self._secrets_dir = secrets_dir
        self._status: int | None = None
        self.served: FuseMount | None = None  # --mount-type fuse: the mount the init bound

    def wait(self, timeout: float | None = None) -> int | None:
        if self._status is None:
            self._status = reaped_status(self.pid, self._pidfd, timeout)
            if self._status is None:
                return None
            self._reclaim_terminal()
        return self._status

    def update(self, files: tuple[SecretFile, ...]) -> None:
        if self.served is not None:
            self.served.update(files)
        else:
            fill(self._root_fd, files, self._owner, self._secrets_dir)

    def signal(self, signum: signal.Signals) -> None:
        if self._status is None:
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                pass

    def remove(self) -> None:
        """Close the last handle on the tmpfs; with the namespace gone, it is freed."""
        if self._status is None:
            self.signal(signal.SIGKILL)
            self.wait()
        for fd in (self._root_fd, self._pidfd):
            if fd >= 0:
                os.close(fd)
        self._root_fd = self._pidfd = -1
        if self.served is not None:
            self.served.remove()

    def _reclaim_terminal(self) -> None:
        """tini gave the terminal to the command's group; take it back, as a shell does."""
        if self._tty_fd is not None:
            terminal.reclaim(self._tty_fd)
            self._tty_fd = None


class SandboxRuntime:
    name = "sandbox"

    def __init__(self, runtime_dir: Path | None = None) -> None:
        self.runtime_dir = runtime_dir  # where a FUSE mount is made (--mount-type fuse)

    @classmethod
    def from_config(cls, config: Config) -> SandboxRuntime:
        return cls(config.runtime_dir)

    def launch(self, spec: RunSpec, mount: SecretMount, stdio: Stdio) -> Container:
        """Fork, set the namespaces up, write the files, exec tini and the command.

        Raises:
            LaunchError: tini is not installed (exit 125).
            MountError: the namespace or the tmpfs could not be set up (exit 125).
            CommandNotFound / CommandNotRunnable: exec failed (exit 127 / 126).
        """
        if not spec.command:
            raise UsageError("no command given", "secretd run [OPTIONS] -- CMD [ARG...]")
        root = os.geteuid() == 0
        identity = resolve_user(spec.user, root)
        owner = (0, 0) if root else (os.getuid(), os.getgid())
        if not root:
            _check_userns_owners(mount.files, owner)
        tty = stdio[0] if os.isatty(stdio[0]) else None
        foreground = tty is not None and terminal.in_foreground(tty)
        plan = Plan(
            command=spec.command,
            env=dict(spec.env),
            secrets_dir=spec.secrets_dir,
            size=mount.size,
            binds=layout(mount.files, spec.secrets_dir).binds(os.path.lexists),
            exec_configs=uses_configs(mount.files, spec.secrets_dir),
            identity=identity,
            userns=not root,
            workdir=spec.workdir,
            stdio=stdio,
            parent=os.getpid(),
            init=find_init(),
            new_session=tty is not None and not foreground,
        )
        served = self._serve(mount)
        if served is not None:
            plan = dataclasses.replace(plan, source=str(served.path))
        try:
            process = self._start(plan, spec, mount, stdio, owner, tty if foreground else None)
        except BaseException:
            if served is not None:
                served.remove()
            raise
        if isinstance(process, SandboxProcess):
            process.served = served
        elif served is not None:
            served.remove()
        return process

    def _serve(self, mount: SecretMount) -> FuseMount | None:
        """``--mount-type fuse``: the FUSE mount the init binds, served by this process."""
        if mount.kind != "fuse":
            return None
        from ..config import default_runtime_dir
        from ..mount.fuse import FuseMount

        return FuseMount.create(self.runtime_dir or default_runtime_dir(os.environ), mount)

    def _start(
        self,
        plan: Plan,
        spec: RunSpec,
        mount: SecretMount,
        stdio: Stdio,
        owner: tuple[int, int],
        tty: int | None,
    ) -> Container:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # Each message then says which process sent it: the init's pid, in our namespace.
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        helper = spawn.helper()
        if helper is not None:  # the compiled set-up: no fork of this process
            pid = spawn.start(helper, plan, theirs)
        else:
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                ours.close()
                child(plan, theirs)
        theirs.close()
        with ours:
            try:
                return _parent(pid, ours, mount, owner, tty)
            except SandboxRefused as exc:
                ci = detect_ci()
                if ci is None or mount.kind == "fuse":  # no FUSE without a sandbox
                    raise
                refused = exc
        return _without_sandbox(refused, ci, spec, mount, stdio)


def _without_sandbox(
    refused: SandboxRefused, ci: CI, spec: RunSpec, mount: SecretMount, stdio: Stdio
) -> Container:
    """A CI job whose sandbox is refused runs as ``--no-sandbox`` would, saying so once."""
    from .hostdir import HostRuntime

    log.warning(
        "%s; in CI (%s) the command runs without a sandbox, its secrets in a private "
        "directory on a tmpfs ($SECRETD_SECRETS_DIR, removed when it ends); --no-sandbox "
        "skips the attempt",
        refused.message,
        ci.origin,
    )
    return HostRuntime().launch(spec, mount, stdio)


def find_init() -> str:
    """The path of tini, the sandbox's PID 1, on secretd's own PATH.

    Raises:
        LaunchError: it is not installed.
    """
    for name in INITS:
        path = which(name)
        if path:
            return os.path.abspath(path)
    raise LaunchError(
        "cannot start the sandbox: tini (its PID 1, as in 'docker run --init') is not on PATH",
        "install it: apt-get install tini",
    )


def _check_userns_owners(files: Sequence[SecretFile], owner: tuple[int, int]) -> None:
    for file in files:
        if file.uid not in (None, owner[0]) or file.gid not in (None, owner[1]):
            raise UsageError(
                f"secret file {file.target!r} asks for uid {file.uid} gid {file.gid}, "
                f"but only uid {owner[0]} gid {owner[1]} exist in an unprivileged sandbox",
                "drop uid=/gid= or run secretd as root",
            )


def _parent(
    helper: int,
    sock: socket.socket,
    mount: SecretMount,
    owner: tuple[int, int],
    tty: int | None,
) -> SandboxProcess:
    """Fill the init's tmpfs and see it exec; ``helper`` (the forked child) only clones
    the init and leaves, so it sends nothing but its own failures."""
    init = root_fd = -1
    try:
        message, fds, sender = _receive(sock)
        if sender is not None and sender != helper:
            init = sender
        if message == b"fuse":  # the init binds the FUSE mount this process serves
            sock.send(b"go")
            message, _, _ = _receive(sock)
        elif fds:
            root_fd = fds[0]
            if message == b"fd-noswap-refused":
                log.debug("kernel refused tmpfs noswap; mounted the secrets without it")
            fill(root_fd, mount.files, owner, mount.secrets_dir)
            sock.send(b"go")
            message, _, _ = _receive(sock)
        if message:
            raise _failure(message)
        if init < 0:
            raise MountError("cannot set up the sandbox: its init ended before it started")
    except BaseException:
        if root_fd >= 0:
            os.close(root_fd)
        for pid in (init, helper):
            if pid > 0:
                kill_and_reap(pid)
        raise
    os.waitpid(helper, 0)
    return SandboxProcess(init, root_fd, owner, tty, mount.secrets_dir)


def _receive(sock: socket.socket) -> tuple[bytes, list[int], int | None]:
    """One message: ``(bytes, descriptors, pid of the sender)``; ``b""`` once every
    process holding the other end has exec'd or exited."""
    int_size = struct.calcsize("i")
    room = socket.CMSG_SPACE(int_size) + socket.CMSG_SPACE(struct.calcsize("3i"))
    message, ancillary, _, _ = sock.recvmsg(4096, room)
    fds: list[int] = []
    sender = None
    for level, kind, data in ancillary:
        if level != socket.SOL_SOCKET:
            continue
        if kind == socket.SCM_RIGHTS:
            fds.extend(array.array("i", data[: len(data) - len(data) % int_size]))
        elif kind == socket.SCM_CREDENTIALS:
            sender = struct.unpack("3i", data[: struct.calcsize("3i")])[0]
    return message, fds, sender


def _failure(message: bytes) -> SecretdError:
    kind, _, text = message.decode(errors="replace").partition(":")
    return FAILURES.get(kind, LaunchError)(text)
