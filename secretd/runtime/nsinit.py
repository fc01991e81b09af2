"""The sandbox's side of a launch, between fork and exec, every failure reported to
secretd over the socket as ``kind:text``.

This is Python, running in a copy of a possibly threaded process (the daemon) in which
only the forking thread survived: a lock another thread held stays held for good. So it
imports nothing, logs nothing and allocates little; each step is a system call through
``os`` or ``_linux``, and ``exec`` (or ``os._exit``) ends it.

The forked helper enters the mount (and user) namespaces and clones the init into a new
PID namespace as secretd's own child, then leaves. The init mounts ``/proc`` and the
secrets, drops privileges and execs tini with the command.

``spawn.c`` does the same steps, with the same failure lines, where it is built (it is
what runs then: ``spawn.py``); a change here needs the same change there, and
``tests/fastpath/test_spawn.py`` compares the two.
"""

from __future__ import annotations

import errno
import os
import select
import signal
import socket
import stat
from collections.abc import Mapping
from dataclasses import dataclass

from .. import _linux
from ..mount.tmpfs import CONFIGS, MOUNT_FLAGS, SECRETS, detached_tmpfs
from ..spec import Stdio
from ..users import Identity

BIND_RO = (
    _linux.MS_BIND
    | _linux.MS_REMOUNT
    | _linux.MS_RDONLY
    | _linux.MS_NOSUID
    | _linux.MS_NODEV
    | _linux.MS_NOEXEC
)


@dataclass(frozen=True)
class Plan:
    """What the child needs; computed in the parent so the child only makes syscalls."""

    command: tuple[str, ...]
    env: dict[str, str]
    secrets_dir: str
    size: int
    binds: tuple[tuple[str, str], ...]  # (path in the tmpfs, target), parents first
    identity: Identity
    userns: bool
    workdir: str | None
    stdio: Stdio
    parent: int
    init: str
    new_session: bool  # a terminal we do not own: keep the command from taking it
    exec_configs: bool = False  # configs/ is bound without noexec, so the tmpfs is made so
    source: str | None = None  # a FUSE mount secretd serves, bound instead of a new tmpfs


def child(plan: Plan, sock: socket.socket) -> None:
    """The forked helper: enter the namespaces, clone the init into a new PID namespace as
    secretd's child, leave. Syscalls only, every failure reported to the parent."""
    kind = "setup"
    try:
        _linux.prctl(_linux.PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != plan.parent:
            os._exit(125)
        os.setpgid(0, 0)  # out of reach of a Ctrl-C meant for secretd
        kind = "refused"  # the kernel or a security policy allows no namespace here
        _enter_namespaces(plan.userns)
        if _linux.clone_sibling_init() == 0:
            _init(plan, sock)
    except BaseException as exc:  # noqa: B036 - report anything, then leave without cleanup
        _report(sock, kind, exc, plan.command[0])
        os._exit(125)
    os._exit(0)


def _init(plan: Plan, sock: socket.socket) -> None:
    """PID 1 of the sandbox until it execs tini. Its parent is secretd, whose death kills
    it (and the namespace with it); it cannot see secretd's pid, but the socket tells."""
    kind = "setup"
    try:
        _linux.prctl(_linux.PR_SET_PDEATHSIG, signal.SIGKILL)
        if plan.new_session:
            os.setsid()
        else:
            os.setpgid(0, 0)
        _linux.mount("proc", "/proc", "proc", MOUNT_FLAGS)
        root_fd = _mount_secrets(plan, sock)  # secretd answers: it lived after the prctl
        kind = "usage"
        _become(plan.identity)
        if plan.workdir:
            os.chdir(plan.workdir)
        _linux.prctl(_linux.PR_SET_PDEATHSIG, signal.SIGKILL)  # a new uid cleared it
        if _readable(sock):  # secretd sends no more: it is gone
            os._exit(125)
        os.close(root_fd)
        for target, fd in enumerate(plan.stdio):
            if fd != target:
                os.dup2(fd, target)
        for ignored_by_python in (signal.SIGPIPE, signal.SIGXFSZ):  # as subprocess does
            signal.signal(ignored_by_python, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        kind = "exec"
        _check_command(plan.command[0], plan.env)
        kind = "init"
        os.execve(plan.init, [plan.init, "-g", "--", *plan.command], plan.env)
    except BaseException as exc:  # noqa: B036 - report anything, then leave without cleanup
        _report(sock, kind, exc, plan.command[0])
        os._exit(127 if isinstance(exc, FileNotFoundError) and kind == "exec" else 126)
    os._exit(125)


def _readable(sock: socket.socket) -> bool:
    """``poll``, not ``select``: the daemon's child inherits descriptors past 1024."""
    waiting = select.poll()
    waiting.register(sock, select.POLLIN)
    return bool(waiting.poll(0))


def _check_command(name: str, env: Mapping[str, str]) -> None:
    """Fail as ``execvp`` would, before tini runs it (tini's own message is not ours).

    Raises:
        FileNotFoundError: nothing by that name on the command's PATH.
        PermissionError: found, but not an executable regular file.
    """
    candidates = [name] if "/" in name else [os.path.join(d, name) for d in os.get_exec_path(env)]
    denied = False
    for path in candidates if name else ():
        try:
            mode = os.stat(path).st_mode
        except (FileNotFoundError, NotADirectoryError):
            continue
        except PermissionError:
            denied = True
            continue
        if stat.S_ISREG(mode) and os.access(path, os.X_OK):
            return
        denied = True
    code = errno.EACCES if denied else errno.ENOENT
    raise OSError(code, os.strerror(code), name)


def _report(sock: socket.socket, kind: str, exc: BaseException, command: str) -> None:
    if kind == "exec" and isinstance(exc, OSError):
        if exc.errno == errno.ENOENT:
            line = f"notfound:cannot run {command!r}: command not found: check PATH or the name"
        else:
            line = f"noexec:cannot run {command!r}: {os.strerror(exc.errno or 0)}"
    elif isinstance(exc, OSError):
        if kind == "setup" and exc.errno in (errno.EPERM, errno.EACCES):
            kind = "refused"  # a mount a security policy denies: no sandbox can be made
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


def _mount_secrets(plan: Plan, sock: socket.socket) -> int:
    """Make a detached tmpfs, let the parent fill it, then attach read-only views of it
    (of the FUSE mount secretd serves, when there is one: this namespace's copy of it)."""
    if plan.source is not None:
        root_fd = os.open(plan.source, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        sock.send(b"fuse")
    else:
        root_fd, noswap = detached_tmpfs(plan.size, noexec=not plan.exec_configs)
        socket.send_fds(sock, [b"fd" if noswap else b"fd-noswap-refused"], [root_fd])
    if sock.recv(16) != b"go":
        os._exit(125)
    for inner, target in ((SECRETS, plan.secrets_dir), *plan.binds):
        st = os.stat(inner, dir_fd=root_fd, follow_symlinks=False)
        _ensure_mountpoint(target, directory=stat.S_ISDIR(st.st_mode))
        view = _linux.clone_tree(root_fd, inner)
        try:
            _linux.attach(view, target)
        finally:
            os.close(view)
        # a config may be a script: its views alone allow exec
        flags = BIND_RO & ~_linux.MS_NOEXEC if inner.startswith(CONFIGS + "/") else BIND_RO
        _linux.mount(None, target, None, flags)
    if plan.source is not None:  # the namespace needs no writable view of it
        try:
            _linux.umount(plan.source)
        except OSError:
            pass  # locked into a user namespace; under a 0700 directory of root's
    return root_fd


def _ensure_mountpoint(path: str, directory: bool) -> None:
    """Make ``path`` exist, in the namespace only: its nearest existing ancestor is covered
    by a tmpfs that binds back everything it held, gets the missing elements, and is then
    made read-only like every other mount secretd adds."""
    missing: list[str] = []
    base = path
    while True:
        try:
            mode = os.stat(base).st_mode
            break
        except FileNotFoundError:
            missing.append(os.path.basename(base))
            base = os.path.dirname(base)
    if not missing:
        if stat.S_ISDIR(mode) != directory:
            kind = "a directory" if directory else "a file"
            raise OSError(errno.ENOTDIR if directory else errno.EISDIR, f"not {kind}", path)
        return
    if not stat.S_ISDIR(mode):
        raise OSError(errno.ENOTDIR, "not a directory", base)
    _shadow(base)
    for depth in range(len(missing) - 1, 0, -1):
        os.mkdir(os.path.join(base, *reversed(missing[depth:])), 0o755)
    if directory:
        os.mkdir(path, 0o755)
    else:
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o444))
    _linux.mount(None, base, None, BIND_RO)


def _shadow(parent: str) -> None:
    """Cover ``parent`` with a tmpfs that binds back everything it held (namespace only).

    ``/`` too (a Swarm config's default target is ``/<name>``): a mount over the root is
    not seen by lookups, which start at the root, but ``/..`` crosses onto it; the init
    then makes it its root with ``chroot`` and returns to its working directory."""
    pfd = os.open(parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    cwd = os.getcwd()
    shadow = -1
    try:
        via = f"/proc/self/fd/{pfd}"
        entries = os.listdir(via)
        _linux.mount("secretd-shadow", parent, "tmpfs", MOUNT_FLAGS, "mode=0755")
        shadow = os.open(
            "/.." if parent == "/" else parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
        )
        for name in entries:
            source, target = f"{via}/{name}", f"/proc/self/fd/{shadow}/{name}"
            st = os.lstat(source)
            if stat.S_ISLNK(st.st_mode):
                os.symlink(os.readlink(source), name, dir_fd=shadow)
                continue
            if stat.S_ISDIR(st.st_mode):
                os.mkdir(name, 0o755, dir_fd=shadow)
            else:
                flags = os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC
                os.close(os.open(name, flags, 0o644, dir_fd=shadow))
            _linux.mount(source, target, None, _linux.MS_BIND | _linux.MS_REC)
        if parent == "/":
            os.fchdir(shadow)
            os.chroot(".")
            os.chdir(cwd)
    finally:
        os.close(pfd)
        if shadow >= 0:
            os.close(shadow)


def _become(identity: Identity) -> None:
    if identity.uid == os.getuid() and identity.gid == os.getgid() and identity.groups is None:
        return
    os.setgroups(list(identity.groups or ()))
    os.setgid(identity.gid)
    os.setuid(identity.uid)
