"""The integrated OCI runtime: an image run by ``runc``, no container engine involved.

One run: resolve the image (layers unpacked once, cached), mount an overlay of its layers
under a fresh upper directory, mount the secrets tmpfs on the host (mount/tmpfs.py),
write ``config.json`` (bundle.py: Docker's defaults, the secrets bound read-only at the
secrets directory), then ``runc run`` with the client's stdio. ``runc`` forwards the
signals it gets to the container and exits with the container's status (128+N when
killed by signal N). When the command ends, or secretd is interrupted, the container's
directory, overlay, upper layer, secrets tmpfs and runc state are taken down; leftovers
of a killed secretd are taken down by ``state.remove_dead_containers`` (``secretd prune``, and the
daemon on start). ``-d`` hands the container to a monitor process (monitor.py).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from functools import partial
from pathlib import Path
from typing import Any

from ... import _linux
from ...config import Config
from ...errors import CommandNotFound, CommandNotRunnable, LaunchError, UsageError
from ...mount import host_mount as create_host_mount
from ...mount.tmpfs import HostMount
from ...spec import RunSpec, SecretFile, SecretMount, Stdio
from ..process import kill_and_reap, reaped_status, start_time
from . import bundle
from .images import ImageStore, Limits
from .rootfs import in_root
from .state import (
    Record,
    claim_name,
    clean_signals,
    containers_dir,
    disposition,
    init_pid,
    runc,
    runc_error,
    save,
    take_down_container,
)

ENV_BINARY = "SECRETD_OCI_RUNTIME"


def _has_dir(rootfs: Path | str, spec: RunSpec, directory: str) -> bool:
    """Whether the container will have ``directory`` without us: in the image (links
    resolved inside it), or at or below a volume. Such a directory is never bound over
    (mount/tmpfs.py): that would hide its files."""
    if any(
        directory == dest or directory.startswith(dest.rstrip("/") + "/")
        for dest in (bundle.volume(v)["destination"] for v in spec.volumes)
    ):
        return True
    try:
        return os.path.lexists(in_root(str(rootfs), directory))
    except OSError:  # a link loop: something is there
        return True


class OciContainer:
    """A container run in the foreground: ``runc run`` is our child (Container protocol)."""

    def __init__(self, directory: Path, record: Record, mount: HostMount, pid: int) -> None:
        self.id = record.id
        self.directory, self.record, self.mount, self.pid = directory, record, mount, pid
        self._pidfd = os.pidfd_open(pid)
        self._status: int | None = None
        self._removed = False
        self._killed_by = 0

    def wait(self, timeout: float | None = None) -> int | None:
        if self._status is None:
            self._status = reaped_status(self.pid, self._pidfd, timeout)
            if self._status is None:
                return None
            if self._killed_by and self._status == 128 + signal.SIGKILL:
                self._status = 128 + self._killed_by
            elif self._status == 1:  # runc's own failure, or the command's exit 1?
                self._status = _runc_failure(self.directory) or 1
        return self._status

    def update(self, files: tuple[SecretFile, ...]) -> None:
        self.mount.update(files)

    def signal(self, signum: signal.Signals) -> None:
        """Forward through runc; a pid 1 that leaves ``signum`` at its default action is
        killed instead, and the run ends with 128+N, as a host command would."""
        if self._status is not None:
            return
        init = init_pid(self.directory)
        target, sent = self.pid, signum
        if init and signum not in HARMLESS and disposition(init, signum) == "default":
            target, sent, self._killed_by = init, signal.SIGKILL, signum
        try:
            os.kill(target, sent)
        except ProcessLookupError:
            pass

    def remove(self) -> None:
        """Stop the container if it still runs, then take everything down (idempotent)."""
        if self._removed:
            return
        if self._status is None:
            kill_and_reap(self.pid)
            self._status = 128 + signal.SIGKILL
        os.close(self._pidfd)
        take_down_container(self.directory, self.record, self.mount)
        self._removed = True


class DetachedContainer:
    """``-d``: the monitor owns the container now; secretd reports its id and, while it
    holds this (the daemon keeps it: engine.py), can replace its files and signal it.
    ``wait`` returns at once: ``removed`` says when the container is gone."""

    def __init__(self, directory: Path, record: Record, mount: HostMount) -> None:
        self.id = record.id
        self.directory = directory
        self.record = record
        self.mount = mount

    def wait(self, timeout: float | None = None) -> int | None:
        return 0

    def update(self, files: tuple[SecretFile, ...]) -> None:
        self.mount.update(files)

    def signal(self, signum: signal.Signals) -> None:
        """``--on-change signal:NAME``, through runc (to the container's init)."""
        runc(self.record, "kill", self.id, str(int(signum)))

    def removed(self) -> bool:
        """Whether ``secretd rm`` took the container down."""
        return not (self.directory / "meta.json").exists()

    def remove(self) -> None:
        """The container outlives this run ('secretd rm' removes it): only secretd's
        handle on its tmpfs is closed."""
        self.mount.keep()


# Signals whose default action is to do nothing: a pid 1 that leaves them alone is fine.
HARMLESS = frozenset({signal.SIGWINCH, signal.SIGCHLD, signal.SIGURG, signal.SIGCONT})


def _runc_failure(directory: Path) -> int:
    """The exit status ``docker run`` gives for what runc logged (0: runc did not fail)."""
    message = runc_error(directory)
    if not message:
        return 0
    if "exec" in message and ("not found" in message or "no such file" in message):
        return CommandNotFound.exit_code
    if "exec" in message and "permission denied" in message:
        return CommandNotRunnable.exit_code
    return 125


class OciRuntime:
    name = "oci"

    def __init__(self, config: Config, binary: str) -> None:
        self.config = config
        self.binary = binary

    @classmethod
    def from_config(cls, config: Config) -> OciRuntime:
        """runc unless ``SECRETD_OCI_RUNTIME`` or ``[providers.oci] runtime_binary`` says
        otherwise (crun works where cgroups are not in hybrid mode)."""
        binary = os.environ.get(ENV_BINARY) or config.provider("oci").get("runtime_binary")
        return cls(config, str(binary or "runc"))

    def launch(
        self, spec: RunSpec, mount: SecretMount, stdio: Stdio
    ) -> OciContainer | DetachedContainer:
        """Prepare the bundle and start the container.

        Raises:
            UsageError: flags the oci runtime does not support, bad -u/-w/-v, no command.
            ImageError: the image is missing, damaged or unsafe.
            CommandNotFound / CommandNotRunnable: as for a host command (127 / 126).
            LaunchError: runc is missing, or the container could not be set up.
        """
        binary = self._check(spec)
        container_id = os.urandom(32).hex()
        base = containers_dir(self.config)
        directory = base / container_id
        record = Record(
            id=container_id, image=spec.image or "", command=list(spec.command),
            secrets=[ref.name for ref in spec.secrets], runc=binary,
            runc_root=str(self.config.runtime_dir / "runc"), name=spec.name or "",
            detached=spec.detach, remove=spec.remove or not spec.detach,
            owner=os.getpid(), owner_start=start_time(os.getpid()),
        )
        store = ImageStore(self.config.state_dir, Limits.from_config(self.config))
        host_mount: HostMount | None = None
        pid = 0
        try:
            with store.locked():  # until the record names its layers, 'image rm' waits
                image = store.resolve(spec.image or "")
                base.mkdir(mode=0o700, parents=True, exist_ok=True)
                if spec.name:
                    claim_name(base, spec.name, container_id)
                directory.mkdir(mode=0o700)
                record.layers = [str(layer) for layer in image.layers]
                save(directory, record)
            rootfs = _overlay(directory, image.layers)
            hostname = spec.hostname or container_id[:12]
            shadowed = [bundle.volume(v)["destination"] for v in spec.volumes]
            process = bundle.process_config(spec, image.config, rootfs, hostname, shadowed)
            record.command = process["args"]
            host_mount = create_host_mount(self.config.runtime_dir, mount)  # tmpfs or FUSE
            record.mount = str(host_mount.path)
            binds = host_mount.binds_for(partial(_has_dir, rootfs, spec))
            mounts = bundle.user_mounts(
                spec, host_mount.secrets_path, binds, directory, hostname, host_mount.configs_path
            )
            document = bundle.config(spec, process, hostname, mounts, f"/secretd/{container_id}")
            (directory / "config.json").write_text(json.dumps(document))
            save(directory, record)
            if spec.detach:
                _detach(directory)
                os.write(stdio[1], f"{container_id}\n".encode())
                return DetachedContainer(directory, record, host_mount)
            pid = self._run(directory, record, spec, stdio)
            return OciContainer(directory, record, host_mount, pid)
        except BaseException:  # a failure, or a signal before the engine holds the container
            if pid:
                kill_and_reap(pid)
            take_down_container(directory, record, host_mount)
            raise

    def _check(self, spec: RunSpec) -> str:
        if os.geteuid() != 0:
            raise LaunchError("the oci runtime needs root (runc and overlayfs mounts)",
                                "run secretd as root, or use --runtime docker or podman")
        if spec.network not in (None, "none", "host"):
            raise UsageError(f"--network {spec.network}: the oci runtime knows none and host",
                             "use --network none|host, or --runtime docker for other networks")
        for flag, given in (("-p", spec.publish), ("--restart", spec.restart)):
            if given:
                raise UsageError(f"{flag} needs a container engine", "use --runtime docker")
        if spec.detach and spec.tty:
            raise UsageError("-d with -t is not supported by the oci runtime", "drop -t")
        from shutil import which

        binary = which(self.binary)
        if binary is None:
            raise LaunchError(f"{self.binary} is not installed",
                                "apt-get install runc, or set SECRETD_OCI_RUNTIME")
        return binary

    def _run(self, directory: Path, record: Record, spec: RunSpec, stdio: Stdio) -> int:
        """``runc run`` with the client's stdio (stdin only with ``-i``, as Docker)."""
        argv = [record.runc, "--root", record.runc_root, "--log", str(directory / "runc.log"),
                "--log-format", "json", "run", "--bundle", str(directory),
                "--pid-file", str(directory / "pid"), record.id]
        stdin = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        try:
            fds = (stdio[0] if spec.interactive else stdin, stdio[1], stdio[2])
            actions = [(os.POSIX_SPAWN_DUP2, fd, target) for target, fd in enumerate(fds)]
            # Without a TTY, runc gets a process group of its own, so a ^C reaches the
            # container once (forwarded by secretd), not twice; with one, runc must stay
            # in the terminal's foreground group to read it.
            group: dict[str, Any] = {} if spec.tty else {"setpgroup": 0}
            return os.posix_spawn(
                record.runc, argv, {"PATH": os.environ.get("PATH", "")},
                file_actions=actions, **group, **clean_signals(),
            )
        finally:
            os.close(stdin)


def _overlay(directory: Path, layers: tuple[Path, ...]) -> str:
    """Mount the layers (top first) under a fresh upper directory at ``rootfs/``."""
    for name in ("rootfs", "upper", "work"):
        (directory / name).mkdir(mode=0o755)
    if any(c in path for path in map(str, (directory, *layers)) for c in ",:"):
        raise LaunchError(f"overlayfs cannot use paths with ',' or ':' ({directory})",
                            "choose a state_dir without them")
    rootfs = str(directory / "rootfs")
    lower = ":".join(str(layer) for layer in reversed(layers))
    options = f"lowerdir={lower},upperdir={directory / 'upper'},workdir={directory / 'work'}"
    try:
        _linux.mount("overlay", rootfs, "overlay", 0, options)
    except OSError as exc:
        raise LaunchError(f"cannot mount the image's overlay: {exc.strerror}",
                            "secretd needs overlayfs and a state_dir on a local file system") \
            from None
    return rootfs


def _detach(directory: Path) -> None:
    """Start the monitor and wait for its word that the container runs.

    Raises:
        CommandNotFound / CommandNotRunnable / LaunchError: runc's failure, classified.
    """
    read, write = os.pipe()
    devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    package = str(Path(__file__).resolve().parents[2])
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": package}
    actions = [(os.POSIX_SPAWN_DUP2, devnull, fd) for fd in (0, 1, 2)]
    actions.append((os.POSIX_SPAWN_DUP2, write, 3))
    try:
        pid = os.posix_spawn(
            sys.executable, [sys.executable, "-m", "secretd.runtime.oci.monitor", str(directory)],
            env, file_actions=actions, setsid=True,
        )
    finally:
        os.close(write)
        os.close(devnull)
    os.waitpid(pid, 0)  # it forks and leaves at once
    with os.fdopen(read, "rb") as report:
        answer = report.read().decode(errors="replace")
    if answer == "ok":
        return
    message = answer.removeprefix("error:") or "the monitor process died"
    code = _runc_failure(directory)
    kind = {127: CommandNotFound, 126: CommandNotRunnable}.get(code, LaunchError)
    raise kind(f"cannot start the container: {message}")
