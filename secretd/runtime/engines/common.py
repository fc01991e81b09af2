"""What the Docker and Podman runtimes share: where the engine is, and the host-side
secrets mount a container binds.

A container engine keeps a container after ``secretd`` exits (``-d``, or a run without
``--rm``), so the tmpfs holding its secrets must outlive secretd too, and nobody but the
engine knows when the container goes away. Each engine mount therefore carries notes in
its root, a part never bound into the container: ``owner.json`` (engine, endpoint, the
process that made it, whether it was detached) and ``container`` (the id). Every container
also carries the label ``io.secretd.mount=<tmpfs path>``. reaper.py reads both to remove
the mount once its container is gone.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from ...errors import LaunchError, MountError, UsageError
from ...mount import host_mount as create_host_mount
from ...mount.tmpfs import HostMount
from ...spec import RunSpec, SecretMount
from ..process import start_time

log = logging.getLogger(__name__)

LABEL_SECRETS = "io.secretd.secrets"
LABEL_MOUNT = "io.secretd.mount"
OWNER_NOTE = "owner.json"
CONTAINER_NOTE = "container"
DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"


# -- where the engine is -------------------------------------------------------------


def docker_host(environ: Mapping[str, str] = os.environ) -> str:
    """The endpoint the ``docker`` CLI would use: ``DOCKER_HOST``, else the context named
    by ``DOCKER_CONTEXT`` or config.json's ``currentContext``, else the default socket.

    Raises:
        UsageError: the current context does not exist.
    """
    if environ.get("DOCKER_HOST"):
        return environ["DOCKER_HOST"]
    config_dir = Path(environ.get("DOCKER_CONFIG") or Path.home() / ".docker")
    name = environ.get("DOCKER_CONTEXT")
    if not name:
        try:
            name = json.loads((config_dir / "config.json").read_text()).get("currentContext")
        except (OSError, ValueError, AttributeError):
            name = None
    if not name or name == "default":
        return DEFAULT_DOCKER_HOST
    digest = hashlib.sha256(name.encode()).hexdigest()
    meta = config_dir / "contexts" / "meta" / digest / "meta.json"
    try:
        return str(json.loads(meta.read_text())["Endpoints"]["docker"]["Host"])
    except (OSError, ValueError, KeyError, TypeError):
        raise UsageError(f"docker context {name!r} not found", "see 'docker context ls'") from None


def podman_host(environ: Mapping[str, str] = os.environ) -> str:
    """``""`` for the local podman; its remote endpoint when the CLI would use one."""
    if environ.get("CONTAINER_CONNECTION"):
        return f"connection {environ['CONTAINER_CONNECTION']}"
    return environ.get("CONTAINER_HOST", "")


def require_local(host: str, engine: str) -> str:
    """The socket path of an engine on this machine.

    A bind mount names a path on the engine's machine; for a remote engine (tcp://, ssh://,
    Docker Desktop's VM) secretd's tmpfs is not there, and the only way to get the values
    across would be to copy them into the container, which secretd never does.

    Raises:
        LaunchError: the engine is not on this machine.
    """
    if host.startswith("unix://") and "/.docker/desktop/" not in host:
        return host.removeprefix("unix://")
    raise LaunchError(
        f"{engine} at {host} is not on this machine, so secretd's in-memory secrets mount "
        "cannot reach its containers (secretd will not copy secrets into a container)",
        "run secretd on the engine's host, or use --runtime oci to run the image here",
    )


def socket_answers(path: str, timeout: float = 0.5) -> bool:
    """Whether a Docker API answers ``/_ping`` on ``path`` (no SDK: used by ``auto``)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            head = b""
            while len(head) < 12 and (chunk := sock.recv(12 - len(head))):
                head += chunk
    except OSError:
        return False
    return head.startswith(b"HTTP/1.") and head[9:12] == b"200"


def detect_engine(environ: Mapping[str, str] = os.environ) -> tuple[str | None, str]:
    """``(engine, why)`` for ``--runtime auto``: Docker if it answers, else Podman if it
    is installed, else ``None``. Cheap: one connect, no SDK import."""
    try:
        host = docker_host(environ)
    except UsageError as exc:
        why = f"Docker: {exc.message}"
    else:
        if not host.startswith("unix://"):
            why = f"Docker at {host} is not on this machine"
        elif socket_answers(host.removeprefix("unix://")):
            return "docker", f"Docker answers at {host}"
        else:
            why = f"no Docker answers at {host}"
    podman = shutil.which("podman", path=environ.get("PATH"))
    if podman:
        return "podman", f"{why}; podman is installed at {podman}"
    return None, f"{why}; podman is not installed"


# -- the mount a container binds -----------------------------------------------------


def open_mount(
    runtime_dir: Path, mount: SecretMount, engine: str, host: str, detach: bool
) -> HostMount:
    """A filled host tmpfs with its owner note; removed again if the note cannot be made.

    Raises:
        MountError: the tmpfs cannot be made.
    """
    host_mount = create_host_mount(runtime_dir, mount)  # a tmpfs, or FUSE (mount/fuse.py)
    owner = {
        "engine": engine,
        "host": host,
        "pid": os.getpid(),
        "start": str(start_time(os.getpid())),  # a string, as notes always had it
        "detach": detach,
    }
    try:
        _write_note(host_mount.path / OWNER_NOTE, json.dumps(owner))
    except OSError as exc:
        host_mount.remove()
        raise MountError(f"cannot prepare the secrets mount: {exc.strerror}") from None
    return host_mount


def _write_note(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def secret_binds(
    spec: RunSpec, host_mount: HostMount, exists: Callable[[str], bool] | None = None
) -> list[tuple[Path, str]]:
    """``(host path, container path)``: the secrets directory, then the absolute targets:
    file by file, or a whole directory where ``exists`` says the image lacks it."""
    binds = host_mount.binds if exists is None else host_mount.binds_for(exists)
    return [(host_mount.secrets_path, spec.secrets_dir), *binds]


def under_volume(spec: RunSpec, directory: str) -> bool:
    """Whether ``directory`` is at or below a ``-v`` volume (``SRC:DST[:OPTS]`` or an
    anonymous ``DST``): the container has it whatever the image holds."""
    for item in spec.volumes:
        target = (item.split(":")[1] if ":" in item else item).rstrip("/")
        if directory == target or directory.startswith(target + "/"):
            return True
    return False


def engine_labels(spec: RunSpec, host_mount: HostMount) -> dict[str, str]:
    """The user's labels plus ours: secret names (never values) and the mount's path."""
    labels = dict(spec.labels)
    labels[LABEL_SECRETS] = ",".join(dict.fromkeys(ref.name for ref in spec.secrets))
    labels[LABEL_MOUNT] = str(host_mount.path)
    return labels


class EventStream:
    """``(container id, io.secretd.mount label)`` per destroyed container; ``close``
    may be called from another thread to end the iteration."""

    def __init__(self, pairs: Iterator[tuple[str, str]], close: Callable[[], None]) -> None:
        self._pairs = pairs
        self._close = close

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return self._pairs

    def close(self) -> None:
        self._close()
