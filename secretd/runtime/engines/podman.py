"""The Podman runtime, through the ``podman`` CLI.

The CLI rather than Podman's Docker-compatible API: it needs no ``podman system service``
running, it reads the user's containers.conf as ``podman run`` does, and it handles the
client's stdio and terminal itself (they are handed to it as its own). Secrets reach the
container exactly as with Docker (common.py): a host tmpfs bound read-only, never Podman's
own ``--secret``, whose file driver keeps values in plaintext under its storage.

``-e`` values travel in podman's environment (``--env NAME``), not in its argv, where any
local user could read them in ``ps``; only variables podman itself reads (``PATH``,
``HOME``, ``CONTAINERS_*``...) go in argv, so podman keeps working.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator

from ...config import Config
from ...errors import LaunchError, UsageError
from ...mount.tmpfs import HostMount
from ...spec import RunSpec, SecretFile, SecretMount, Stdio
from ..oci.rootfs import in_root
from ..process import wait_status
from .base import EngineRuntime
from .common import (
    CONTAINER_NOTE,
    LABEL_MOUNT,
    engine_labels,
    secret_binds,
    under_volume,
)
from .endpoint import EventStream, podman_host, require_local

log = logging.getLogger(__name__)

PODMAN_READS = {"PATH", "HOME", "TMPDIR", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "XDG_DATA_HOME"}
KEYBOARD = (signal.SIGINT, signal.SIGQUIT)


class PodmanEngine:
    """The ``podman`` command, for the reaper: which containers exist, which went away."""

    name = "podman"

    def __init__(self, host: str = "") -> None:
        if host:
            require_local(host, "Podman")
        self.host = host
        self.binary = shutil.which("podman")

    def command(self) -> str:
        if self.binary is None:
            raise LaunchError("podman is not installed", "install it, or use --runtime oci")
        return self.binary

    def live_ids(self) -> set[str]:
        argv = [self.command(), "ps", "-a", "--no-trunc", "--filter", f"label={LABEL_MOUNT}"]
        try:
            done = subprocess.run(
                [*argv, "--format", "{{.ID}}"], capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired):
            raise LaunchError("podman ps did not answer", "check 'podman info'") from None
        if done.returncode != 0:
            raise LaunchError(f"podman ps failed: {done.stderr.strip()}", "check 'podman info'")
        return set(done.stdout.split())

    def destroy_events(self) -> EventStream:
        argv = [self.command(), "events", "--format", "json", "--filter", "type=container"]
        try:
            proc = subprocess.Popen(
                [*argv, "--filter", "event=remove"],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
        except OSError as exc:
            raise LaunchError(f"cannot run podman events: {exc.strerror}") from None
        assert proc.stdout is not None
        lines = proc.stdout

        def pairs() -> Iterator[tuple[str, str]]:
            for line in lines:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                yield event.get("ID", ""), (event.get("Attributes") or {}).get(LABEL_MOUNT, "")
            proc.wait()

        def close() -> None:
            if proc.poll() is None:
                proc.terminate()
                proc.wait()
            lines.close()

        return EventStream(pairs(), close)

    def close(self) -> None:
        """Nothing to release: each query is its own process."""


class PodmanRuntime(EngineRuntime[PodmanEngine]):
    """``--runtime podman``: ``podman run`` with the secrets bound read-only."""

    name = "podman"

    @classmethod
    def from_config(cls, config: Config) -> PodmanRuntime:
        return cls(PodmanEngine(podman_host()), config.runtime_dir)

    def launch(self, spec: RunSpec, mount: SecretMount, stdio: Stdio) -> PodmanContainer:
        """Start ``podman run``. Podman's own failures (no such image...) are its exit
        status 125 and its message on the client's stderr, as with ``podman run``.

        Raises:
            LaunchError: podman is missing or cannot be started.
        """
        host_mount = self.open_mount(spec, mount)
        try:
            binary = self.engine.command()
            exists = image_directories(binary, spec, host_mount)
        except BaseException:
            host_mount.remove()
            raise
        argv, env = podman_run_args(binary, spec, host_mount, exists)
        # With a terminal on stdin podman must stay in the terminal's foreground group to
        # read it; then the terminal's own signals reach it directly.
        keyboard = os.isatty(stdio[0])
        try:
            proc = subprocess.Popen(
                argv,
                env=env,
                stdin=stdio[0],
                stdout=stdio[1],
                stderr=stdio[2],
                process_group=None if keyboard else 0,
            )
        except OSError as exc:
            host_mount.remove()
            raise LaunchError(f"cannot run {binary}: {exc.strerror}") from None
        return PodmanContainer(proc, host_mount, spec.detach, keyboard)


def image_directories(
    binary: str, spec: RunSpec, host_mount: HostMount
) -> Callable[[str], bool] | None:
    """Which directories of absolute targets the container would have without us (in the
    image, or at or below a volume), from ``podman image mount`` (root only; else
    ``None``: every target is bound file by file, which hides nothing)."""
    if not host_mount.placed.units or os.geteuid() != 0 or spec.image is None:
        return None
    try:
        mounted = subprocess.run(
            [binary, "image", "mount", spec.image], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if mounted.returncode != 0:
        log.debug("podman image mount %s failed; binding file by file", spec.image)
        return None
    root = mounted.stdout.strip()
    try:
        present = set()
        for unit in host_mount.placed.units:
            try:
                there = os.path.lexists(in_root(root, unit.target))
            except OSError:  # a link loop: something is there
                there = True
            if there or under_volume(spec, unit.target):
                present.add(unit.target)
    finally:
        subprocess.run([binary, "image", "unmount", spec.image], capture_output=True, timeout=60)
    return present.__contains__


def podman_run_args(
    binary: str,
    spec: RunSpec,
    host_mount: HostMount,
    exists: Callable[[str], bool] | None = None,
) -> tuple[list[str], dict[str, str]]:
    """argv and environment for ``podman run``; values of ``-e`` only in the environment."""
    assert spec.image is not None
    argv = [binary, "run", f"--cidfile={host_mount.path / CONTAINER_NOTE}"]
    switches = {
        "--rm": spec.remove,
        "--detach": spec.detach,
        "--tty": spec.tty,
        "--interactive": spec.interactive,
        "--read-only": spec.read_only,
    }
    argv += [flag for flag, on in switches.items() if on]
    options = {
        "--name": spec.name,
        "--user": spec.user,
        "--workdir": spec.workdir,
        "--entrypoint": spec.entrypoint,
        "--hostname": spec.hostname,
        "--network": spec.network,
        "--restart": spec.restart,
    }
    argv += [f"{flag}={value}" for flag, value in options.items() if value is not None]
    argv += [f"--publish={item}" for item in spec.publish]
    argv += [f"--volume={item}" for item in spec.volumes]
    argv += [f"--label={key}={value}" for key, value in engine_labels(spec, host_mount).items()]
    for source, target in secret_binds(spec, host_mount, exists):
        if "," in target:
            raise UsageError(f"secret target {target!r} contains ','", "podman cannot bind it")
        argv.append(f"--mount=type=bind,source={source},destination={target},ro=true")
    env = dict(os.environ)
    for key, value in spec.env:
        if key in PODMAN_READS or key.startswith("CONTAINERS_"):
            argv.append(f"--env={key}={value}")
        else:
            env[key] = value
            argv.append(f"--env={key}")
    return [*argv, spec.image, *spec.command], env


class PodmanContainer:
    """A ``podman run`` process (the Container protocol); its status is the command's."""

    def __init__(
        self, proc: subprocess.Popen[bytes], host_mount: HostMount, detach: bool, keyboard: bool
    ) -> None:
        self.id = f"podman-{proc.pid}"
        self._proc = proc
        self._mount = host_mount
        self._detach = detach
        self._keyboard = keyboard
        self._removed = False

    def wait(self, timeout: float | None = None) -> int | None:
        return wait_status(self._proc, timeout)

    def update(self, files: tuple[SecretFile, ...]) -> None:
        self._mount.update(files)

    def signal(self, signum: int) -> None:
        """Podman relays signals to the container (``--sig-proxy``); keyboard signals
        already reached it when it shares the terminal."""
        if self._keyboard and signum in KEYBOARD:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(signum)

    def remove(self) -> None:
        """Drop the tmpfs when the run ends; a detached container keeps it until Podman
        removes the container (or never created one)."""
        if self._removed:
            return
        self._removed = True
        if self._proc.poll() is None:
            self._proc.kill()
        created = (self._mount.path / CONTAINER_NOTE).exists()
        if not self._detach or (self._proc.wait() != 0 and not created):
            self._mount.remove()
        else:
            self._mount.keep()
