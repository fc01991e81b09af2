"""The sandbox runtime: a host command in a mount namespace of its own, no image needed.

The child unshares a mount namespace (and a user namespace when the caller is not root,
mapping the caller to itself), mounts a tmpfs there and hands a directory descriptor of it
to the parent, which writes the files. The child then binds the ``secrets/`` part over the
secrets directory read-only, drops privileges and execs. The host never sees the mount;
it dies with the command, or with secretd (``PR_SET_PDEATHSIG``), and the parent's
descriptor lets it rotate files meanwhile.

Missing mount points (``/run/secrets`` on a host that has none) are never created on the
host: their parent directory is shadowed inside the namespace by a tmpfs holding bind
mounts of everything the parent had, plus the new mount point.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import stat
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from .. import _linux
from ..config import Config
from ..errors import (
    CommandNotFound,
    CommandNotRunnable,
    MountError,
    RuntimeError_,
    SecretdError,
    UsageError,
)
from ..mount.tmpfs import SECRETS, detached_tmpfs, fill, layout
from ..spec import RunSpec, SecretFile, SecretMount
from . import Stdio
from .users import Identity, resolve_user

log = logging.getLogger(__name__)
BIND_RO = (
    _linux.MS_BIND
    | _linux.MS_REMOUNT
    | _linux.MS_RDONLY
    | _linux.MS_NOSUID
    | _linux.MS_NODEV
    | _linux.MS_NOEXEC
)
FAILURES: dict[str, type[SecretdError]] = {
    "notfound": CommandNotFound,
    "noexec": CommandNotRunnable,
    "setup": MountError,
    "usage": UsageError,
}


@dataclass(frozen=True)
class _Plan:
    """What the child needs; computed in the parent so the child only makes syscalls."""

    command: tuple[str, ...]
    env: dict[str, str]
    secrets_dir: str
    size: int
    binds: tuple[tuple[str, str], ...]
    identity: Identity
    userns: bool
    workdir: str | None
    stdio: Stdio
    parent: int


class SandboxProcess:
    """A running sandboxed command (the Container protocol)."""

    def __init__(self, pid: int, root_fd: int, owner: tuple[int, int], tty_fd: int | None):
        self.id = f"sandbox-{pid}"
        self.pid = pid
        self._pidfd = os.pidfd_open(pid)
        self._root_fd = root_fd
        self._owner = owner
        self._tty_fd = tty_fd
        self._status: int | None = None

    def wait(self, timeout: float | None = None) -> int | None:
        if self._status is None:
            import select

            ready, _, _ = select.select([self._pidfd], [], [], timeout)
            if not ready:
                return None
            _, raw = os.waitpid(self.pid, 0)
            code = os.waitstatus_to_exitcode(raw)
            self._status = 128 - code if code < 0 else code
            self._reclaim_terminal()
            self._kill_leftovers()
        return self._status

    def update(self, files: tuple[SecretFile, ...]) -> None:
        fill(self._root_fd, files, self._owner)

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

    def _kill_leftovers(self) -> None:
        """Processes the command left in its group would keep the namespace, and with it
        the secrets, alive: they end with the command, as in a container."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def _reclaim_terminal(self) -> None:
        if self._tty_fd is not None:
            _give_terminal(self._tty_fd, os.getpgrp())
            self._tty_fd = None


def _give_terminal(fd: int, pgrp: int) -> bool:
    """Make ``pgrp`` the terminal's foreground group, as a shell does for a job."""
    old = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        os.tcsetpgrp(fd, pgrp)
        return True
    except OSError:
        return False
    finally:
        signal.signal(signal.SIGTTOU, old)


class SandboxRuntime:
    name = "sandbox"

    @classmethod
    def from_config(cls, config: Config) -> SandboxRuntime:
        return cls()

    def launch(self, spec: RunSpec, mount: SecretMount, stdio: Stdio) -> SandboxProcess:
        """Fork, set the namespace up, write the files, exec.

        Raises:
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
        plan = _Plan(
            command=spec.command,
            env=dict(spec.env),
            secrets_dir=spec.secrets_dir,
            size=mount.size,
            binds=layout(mount.files).binds,
            identity=identity,
            userns=not root,
            workdir=spec.workdir,
            stdio=stdio,
            parent=os.getpid(),
        )
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            ours.close()
            _child(plan, theirs)
        theirs.close()
        with ours:
            return _parent(pid, ours, mount.files, owner, stdio)


def _check_userns_owners(files: Sequence[SecretFile], owner: tuple[int, int]) -> None:
    for file in files:
        if file.uid not in (None, owner[0]) or file.gid not in (None, owner[1]):
            raise UsageError(
                f"secret file {file.target!r} asks for uid {file.uid} gid {file.gid}, "
                f"but only uid {owner[0]} gid {owner[1]} exist in an unprivileged sandbox",
                "drop uid=/gid= or run secretd as root",
            )


def _parent(
    pid: int, sock: socket.socket, files: Sequence[SecretFile], owner: tuple[int, int], stdio: Stdio
) -> SandboxProcess:
    root_fd = -1
    try:
        message, fds, _, _ = socket.recv_fds(sock, 4096, 1)
        if fds:
            root_fd = fds[0]
            if message == b"fd-noswap-refused":
                log.debug("kernel refused tmpfs noswap; mounted the secrets without it")
            fill(root_fd, files, owner)
            sock.send(b"go")
            message = sock.recv(4096)
        if message:
            raise _failure(message)
    except BaseException:
        if root_fd >= 0:
            os.close(root_fd)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
        raise
    tty = stdio[0] if os.isatty(stdio[0]) else None
    if tty is not None and not (_in_foreground(tty) and _give_terminal(tty, pid)):
        tty = None
    return SandboxProcess(pid, root_fd, owner, tty)


def _in_foreground(tty: int) -> bool:
    """Whether we own ``tty``'s foreground; a daemon handed a client's terminal does not
    (it is not the daemon's controlling terminal, so ``tcgetpgrp`` fails with ENOTTY)."""
    try:
        return os.tcgetpgrp(tty) == os.getpgrp()
    except OSError:
        return False


def _failure(message: bytes) -> SecretdError:
    kind, _, text = message.decode(errors="replace").partition(":")
    return FAILURES.get(kind, RuntimeError_)(text)


def _child(plan: _Plan, sock: socket.socket) -> None:
    """Runs between fork and exec: syscalls only, every failure reported to the parent."""
    kind = "setup"
    try:
        _linux.prctl(_linux.PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != plan.parent:
            os._exit(125)
        os.setpgid(0, 0)
        _enter_namespaces(plan.userns)
        root_fd = _mount_secrets(plan, sock)
        kind = "usage"
        _become(plan.identity)
        if plan.workdir:
            os.chdir(plan.workdir)
        _linux.prctl(_linux.PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != plan.parent:
            os._exit(125)
        os.close(root_fd)
        for target, fd in enumerate(plan.stdio):
            if fd != target:
                os.dup2(fd, target)
        for ignored_by_python in (signal.SIGPIPE, signal.SIGXFSZ):  # as subprocess does
            signal.signal(ignored_by_python, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        kind = "exec"
        os.execvpe(plan.command[0], list(plan.command), plan.env)
    except BaseException as exc:  # noqa: B036 - report anything, then leave without cleanup
        _report(sock, kind, exc, plan.command[0])
        os._exit(127 if isinstance(exc, FileNotFoundError) and kind == "exec" else 126)
    os._exit(125)


def _report(sock: socket.socket, kind: str, exc: BaseException, command: str) -> None:
    if kind == "exec" and isinstance(exc, OSError):
        if exc.errno == errno.ENOENT:
            line = f"notfound:cannot run {command!r}: command not found: check PATH or the name"
        else:
            line = f"noexec:cannot run {command!r}: {os.strerror(exc.errno or 0)}"
    elif isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        line = f"{kind}:cannot set up the sandbox: {exc.strerror or exc}{where}"
    else:
        line = f"{kind}:cannot set up the sandbox: {type(exc).__name__}"
    try:
        sock.send(line.encode()[:4000])
    except OSError:
        pass


def _enter_namespaces(userns: bool) -> None:
    if userns:
        uid, gid = os.getuid(), os.getgid()
        _linux.unshare(_linux.CLONE_NEWUSER | _linux.CLONE_NEWNS)
        # A non-dumpable parent (the daemon) leaves /proc/self/* owned by root, so the
        # maps could not be written; exec resets dumpability anyway.
        _linux.prctl(_linux.PR_SET_DUMPABLE, 1)
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"{uid} {uid} 1")
        _write("/proc/self/gid_map", f"{gid} {gid} 1")
    else:
        _linux.unshare(_linux.CLONE_NEWNS)
    _linux.mount(None, "/", None, _linux.MS_REC | _linux.MS_PRIVATE)


def _write(path: str, text: str) -> None:
    with open(path, "w") as fh:
        fh.write(text)


def _mount_secrets(plan: _Plan, sock: socket.socket) -> int:
    """Make a detached tmpfs, let the parent fill it, then attach read-only views of it."""
    root_fd, noswap = detached_tmpfs(plan.size)
    socket.send_fds(sock, [b"fd" if noswap else b"fd-noswap-refused"], [root_fd])
    if sock.recv(16) != b"go":
        os._exit(125)
    for inner, target in ((SECRETS, plan.secrets_dir), *plan.binds):
        _ensure_mountpoint(target, directory=inner == SECRETS)
        view = _linux.clone_tree(root_fd, inner)
        try:
            _linux.attach(view, target)
        finally:
            os.close(view)
        _linux.mount(None, target, None, BIND_RO)
    return root_fd


def _ensure_mountpoint(path: str, directory: bool) -> None:
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        parent = os.path.dirname(path)
        if parent in ("", "/"):
            raise OSError(errno.EPERM, "will not shadow '/'", path) from None
        _ensure_mountpoint(parent, directory=True)
        _shadow(parent)
        if directory:
            os.mkdir(path, 0o755)
        else:
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o444))
        return
    if stat.S_ISDIR(mode) != directory:
        kind = "a directory" if directory else "a file"
        raise OSError(errno.ENOTDIR if directory else errno.EISDIR, f"not {kind}", path)


def _shadow(parent: str) -> None:
    """Cover ``parent`` with a tmpfs that binds back everything it held (namespace only)."""
    pfd = os.open(parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        via = f"/proc/self/fd/{pfd}"
        entries = os.listdir(via)
        _linux.mount(
            "secretd-shadow", parent, "tmpfs", _linux.MS_NOSUID | _linux.MS_NODEV, "mode=0755"
        )
        for name in entries:
            source, target = f"{via}/{name}", os.path.join(parent, name)
            st = os.lstat(source)
            if stat.S_ISLNK(st.st_mode):
                os.symlink(os.readlink(source), target)
                continue
            if stat.S_ISDIR(st.st_mode):
                os.mkdir(target, 0o755)
            else:
                os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
            _linux.mount(source, target, None, _linux.MS_BIND | _linux.MS_REC)
    finally:
        os.close(pfd)


def _become(identity: Identity) -> None:
    if identity.uid == os.getuid() and identity.gid == os.getgid() and identity.groups is None:
        return
    os.setgroups(list(identity.groups or ()))
    os.setgid(identity.gid)
    os.setuid(identity.uid)
