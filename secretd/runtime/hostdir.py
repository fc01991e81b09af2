"""The host runtime (``--no-sandbox``): for hosts and containers where no namespace can be
made.

A CI job's container without CAP_SYS_ADMIN (GitLab's docker executor, GitHub's
``container:`` jobs: Docker's seccomp profile refuses ``unshare``) and Ubuntu 24.04's
restricted unprivileged user namespaces leave the sandbox nothing to mount with. There
the command runs as a plain child of secretd, and its secrets are files in a fresh 0700
directory on a tmpfs that already exists (``/dev/shm``, else ``$XDG_RUNTIME_DIR``, checked
with ``statfs``: a disk would keep the values after the run), each 0400 and the caller's,
named by ``SECRETD_SECRETS_DIR`` and one ``<NAME>_FILE`` variable per secret.

What this gives up against the sandbox: processes of the same user can read the files
while the command runs (the sandbox's mount exists in its namespace only), and files
cannot be put at fixed paths such as ``/run/secrets`` or an absolute target.

The directory goes when the command ends, when secretd is interrupted or terminated (it
relays the signal to the command's process group, then removes the directory), and when
secretd is killed: a watchdog process, in a session of its own so that a signal to the
job's process group spares it, waits on a pipe only secretd holds, and removes the
directory when the pipe reports end-of-file. The command dies with secretd
(``PR_SET_PDEATHSIG``), as the sandbox's does.
"""

from __future__ import annotations

import logging
import os
import secrets as _random
import signal
import subprocess
from collections.abc import Sequence

from .. import _linux
from ..config import Config
from ..errors import CommandNotFound, CommandNotRunnable, MountError, UsageError
from ..mount import file_env, inside
from ..mount.atomic import DIR_FLAGS, remove_tree, write_files
from ..spec import DEFAULT_SECRETS_DIR, RunSpec, SecretFile, SecretMount, Stdio
from .process import wait_status
from .terminal import in_foreground, reclaim

log = logging.getLogger(__name__)

DIR_VARIABLE = "SECRETD_SECRETS_DIR"
SHM = "/dev/shm"
OWNER_BITS = 0o700  # files keep their owner's permission bits only: 0444 becomes 0400
NO_TMPFS_HINT = (
    "give the job a tmpfs at /dev/shm (Docker and Podman mount one by default; "
    "docker run --tmpfs /dev/shm) or set XDG_RUNTIME_DIR to a tmpfs directory you own"
)


class HostRuntime:
    """``--no-sandbox``: the command as a plain child, its secrets in a fresh directory on
    an existing tmpfs (see the module's docstring for what that gives up)."""

    name = "host"

    @classmethod
    def from_config(cls, config: Config) -> HostRuntime:
        return cls()

    def launch(self, spec: RunSpec, mount: SecretMount, stdio: Stdio) -> HostProcess:
        """Write the files into a fresh directory on a tmpfs, then start the command.

        Raises:
            UsageError: an option that needs the sandbox (``--user``, absolute targets,
                another owner), or ``--secrets-dir`` not new or not on a tmpfs.
            MountError: no tmpfs to hold the files, or they could not be written.
            CommandNotFound / CommandNotRunnable: the command cannot be started.
        """
        if not spec.command:
            raise UsageError("no command given", "secretd run [OPTIONS] -- CMD [ARG...]")
        _check_supported(spec, mount.files)
        directory = SecretsDir.create(spec.secrets_dir)
        process = None
        try:
            directory.write(mount.files)
            refs = [inside(ref, spec.secrets_dir) for ref in spec.secrets]
            env = dict(spec.env)
            env.update(file_env(refs, directory.path))
            env[DIR_VARIABLE] = directory.path
            tty = stdio[0] if os.isatty(stdio[0]) and in_foreground(stdio[0]) else None
            process = _spawn(spec, env, stdio, tty)
            started = HostProcess(process, directory, tty)
            log.debug("started %s without a sandbox; secrets in %s", process.pid, directory.path)
        except BaseException:  # an interrupt too: the command ends, its files go
            if process is not None:
                _end_group(process)
            directory.remove()
            raise
        return started


class SecretsDir:
    """A fresh 0700 directory on a tmpfs, removed by ``remove()`` or, if secretd dies
    first, by its watchdog."""

    def __init__(self, base: str, base_fd: int, name: str, root_fd: int, watch: Watchdog):
        self.path = os.path.join(base, name)
        self._base_fd = base_fd
        self._name = name
        self._root_fd = root_fd
        self._watch = watch

    @classmethod
    def create(cls, requested: str) -> SecretsDir:
        """``requested`` itself when the user chose it (``--secrets-dir``: it must not
        exist, and its parent must be a tmpfs), else ``secretd-<random>`` on a tmpfs.

        Raises:
            UsageError: the chosen directory exists or is not on a tmpfs.
            MountError: no tmpfs was found, or the directory cannot be made.
        """
        if requested.rstrip("/") in ("", DEFAULT_SECRETS_DIR):
            base, name = tmpfs_base(), f"secretd-{_random.token_hex(8)}"
        else:
            base, name = os.path.split(requested.rstrip("/"))
        try:
            base_fd = os.open(base, DIR_FLAGS)
        except OSError as exc:
            raise UsageError(f"cannot open {base}: {exc.strerror}", NO_TMPFS_HINT) from None
        try:
            if not _on_tmpfs(base_fd):
                raise UsageError(
                    f"--secrets-dir {requested} is not on a tmpfs: its files would reach a disk",
                    f"choose a directory under {SHM} or drop --secrets-dir",
                )
            watch = Watchdog.start(base_fd, name)  # before the directory: no window to leak it
            try:
                root_fd = _make_dir(base_fd, name, requested)
                watch.arm()
            except BaseException:
                watch.stop()
                raise
        except BaseException:
            os.close(base_fd)
            raise
        return cls(base, base_fd, name, root_fd, watch)

    def write(self, files: Sequence[SecretFile]) -> None:
        """Write or replace files, each 0400-like (its owner's bits only) and the caller's.

        Raises:
            MountError: the tmpfs refused them (full, say).
        """
        owned = [
            SecretFile(f.target, f.value, None, None, f.mode & OWNER_BITS, f.group, f.config)
            for f in files
        ]
        try:
            write_files(self._root_fd, owned, (os.geteuid(), os.getegid()))
        except OSError as exc:
            message = f"cannot write the secret files in {self.path}: {exc.strerror}"
            raise MountError(message) from None

    def remove(self) -> None:
        """Delete the directory and stop the watchdog (idempotent)."""
        if self._root_fd < 0:
            return
        os.close(self._root_fd)
        self._root_fd = -1
        try:
            remove_tree(self._base_fd, self._name)
        except OSError as exc:  # the watchdog tries again once the pipe closes
            log.warning("cannot remove %s: %s", self.path, exc.strerror)
        finally:
            self._watch.stop()
            os.close(self._base_fd)


class Watchdog:
    """A process that removes ``name`` below ``base_fd`` once secretd is gone.

    It reads a pipe whose write end only secretd holds (close-on-exec, so the command
    does not inherit it): end-of-file means secretd closed it or died, however it died.
    It removes the directory only once ``arm()`` said secretd made it (a ``--secrets-dir``
    that already existed is not secretd's to remove).
    It runs in a session of its own and ignores the signals a job's cancellation sends,
    holds /dev/null as its stdio (a runner waiting for the job's output to close must not
    wait for it), and makes system calls only.
    """

    def __init__(self, pid: int, write_fd: int):
        self.pid = pid
        self._write_fd = write_fd

    @classmethod
    def start(cls, base_fd: int, name: str) -> Watchdog:
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:
            _watch(read_fd, base_fd, name)
        os.close(read_fd)
        return cls(pid, write_fd)

    def arm(self) -> None:
        """Tell the watchdog the directory is secretd's own now, so it removes it."""
        os.write(self._write_fd, b"+")

    def stop(self) -> None:
        """Close the pipe (the watchdog removes whatever is left, then exits) and reap it."""
        if self._write_fd >= 0:
            os.close(self._write_fd)
            self._write_fd = -1
            os.waitpid(self.pid, 0)


def _watch(read_fd: int, base_fd: int, name: str) -> None:
    """The watchdog's whole life, in the forked child."""
    try:
        os.setsid()
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
            signal.signal(signum, signal.SIG_IGN)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        keep = sorted({0, 1, 2, read_fd, base_fd})
        for low, high in zip(keep, [*keep[1:], os.sysconf("SC_OPEN_MAX")], strict=True):
            os.closerange(low + 1, high)
        armed = False
        while data := os.read(read_fd, 1):
            armed = armed or data == b"+"
        if armed:
            remove_tree(base_fd, name)
    finally:
        os._exit(0)


def tmpfs_base() -> str:
    """The first of ``/dev/shm`` and ``$XDG_RUNTIME_DIR`` that is a tmpfs directory we may
    write in.

    Raises:
        MountError: neither is.
    """
    tried = []
    for base in (SHM, os.environ.get("XDG_RUNTIME_DIR") or ""):
        if not base:
            continue
        if os.path.isdir(base) and os.access(base, os.W_OK | os.X_OK) and _on_tmpfs(base):
            return base
        tried.append(base)
    raise MountError(
        f"no tmpfs to hold the secrets without a sandbox ({', '.join(tried) or SHM} is "
        "missing, not writable or not a tmpfs; XDG_RUNTIME_DIR "
        f"{'is set' if os.environ.get('XDG_RUNTIME_DIR') else 'is unset'})",
        NO_TMPFS_HINT,
    )


def _on_tmpfs(target: str | int) -> bool:
    try:
        return _linux.fs_type(target) == _linux.TMPFS_MAGIC
    except OSError:
        return False


def _make_dir(base_fd: int, name: str, requested: str) -> int:
    try:
        os.mkdir(name, 0o700, dir_fd=base_fd)
    except FileExistsError:
        raise UsageError(
            f"--secrets-dir {requested} exists; without a sandbox secretd makes a new one",
            "name a directory that does not exist yet, or drop --secrets-dir",
        ) from None
    except OSError as exc:
        raise MountError(f"cannot make the secrets directory: {exc.strerror}") from None
    fd = os.open(name, DIR_FLAGS, dir_fd=base_fd)
    os.fchmod(fd, 0o700)  # whatever the umask
    return fd


def _check_supported(spec: RunSpec, files: Sequence[SecretFile]) -> None:
    """Refuse what only a sandbox (or a container) can do, naming the option."""
    if spec.user is not None:
        raise UsageError("--user needs the sandbox", "drop --user, or run the job as that user")
    hint = "without a sandbox, secrets are files in $SECRETD_SECRETS_DIR: use relative targets"
    for file in files:
        if file.target.startswith("/"):
            raise UsageError(f"target {file.target!r} needs the sandbox", hint)
        if file.uid not in (None, os.geteuid()) or file.gid not in (None, os.getegid()):
            raise UsageError(
                f"secret file {file.target!r} asks for uid {file.uid} gid {file.gid}; "
                "without a sandbox the files are the caller's",
                "drop uid=/gid=",
            )


def _spawn(
    spec: RunSpec, env: dict[str, str], stdio: Stdio, tty: int | None
) -> subprocess.Popen[bytes]:
    """The command in a process group of its own (given the terminal when secretd has
    it), killed if secretd dies."""
    parent = os.getpid()

    def setup() -> None:
        _linux.prctl(_linux.PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # secretd died before the prctl
            os._exit(125)
        os.setpgid(0, 0)
        if tty is not None:
            signal.signal(signal.SIGTTOU, signal.SIG_IGN)
            os.tcsetpgrp(tty, os.getpgrp())
            signal.signal(signal.SIGTTOU, signal.SIG_DFL)

    command = spec.command[0]
    try:
        return subprocess.Popen(
            spec.command, env=env, cwd=spec.workdir, stdin=stdio[0], stdout=stdio[1],
            stderr=stdio[2], preexec_fn=setup,
        )  # fmt: skip
    except FileNotFoundError as exc:
        if spec.workdir and exc.filename == spec.workdir:
            raise UsageError(f"cannot enter --workdir {spec.workdir}: no such directory") from None
        raise CommandNotFound(
            f"cannot run {command!r}: command not found: check PATH or the name"
        ) from None
    except PermissionError:
        raise CommandNotRunnable(f"cannot run {command!r}: {os.strerror(13)}") from None
    except OSError as exc:
        raise CommandNotRunnable(f"cannot run {command!r}: {exc.strerror}") from None


class HostProcess:
    """A running host command (the Container protocol) and its secrets directory."""

    def __init__(self, process: subprocess.Popen[bytes], directory: SecretsDir, tty: int | None):
        self.id = f"host-{process.pid}"
        self.pid = process.pid
        self.secrets_path = directory.path
        self._process = process
        self._directory = directory
        self._tty = tty

    def wait(self, timeout: float | None = None) -> int | None:
        status = wait_status(self._process, timeout)
        if status is not None and self._tty is not None:
            reclaim(self._tty)
            self._tty = None
        return status

    def update(self, files: tuple[SecretFile, ...]) -> None:
        self._directory.write(files)

    def signal(self, signum: signal.Signals) -> None:
        """To the command's process group, as tini relays a signal in the sandbox; SIGCONT
        follows SIGTERM and SIGHUP, as a shell's ``kill`` does, so that a stopped command
        (Ctrl-Z, a read from a terminal it lost) ends instead of keeping the run waiting."""
        if self._process.returncode is None:
            try:
                os.killpg(self.pid, signum)
                if signum in (signal.SIGTERM, signal.SIGHUP):
                    os.killpg(self.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass

    def remove(self) -> None:
        """Kill what is left of the command's process group, then remove the directory."""
        _end_group(self._process)
        self.wait()
        self._directory.remove()


def _end_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL to the command's process group (what it left running too), then reap it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()
