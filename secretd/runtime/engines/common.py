"""What the Docker and Podman runtimes share: where the engine is, the host-side secrets
mount a container binds, and removing that mount once its container is gone.

A container engine keeps a container after ``secretd`` exits (``-d``, or a run without
``--rm``), so the tmpfs holding its secrets must outlive secretd too, and nobody but the
engine knows when the container goes away. Each engine mount therefore carries notes in
its root, a part never bound into the container: ``owner.json`` (engine, endpoint, the
process that made it, whether it was detached) and ``container`` (the id). Every container
also carries the label ``io.secretd.mount=<tmpfs path>``. Two things remove the mounts:

- ``MountReaper`` (``watch_destroyed``), run by the daemon in a thread: on each
  ``destroy``/``remove`` event of a labelled container it removes that container's tmpfs.
- ``reap``: removes mounts whose owner process has exited and whose container no longer
  exists; the daemon runs it when it starts watching, ``secretd run`` before each launch.

A mount whose owner is alive and attached is left alone: that process removes it itself.
Mounts without notes (another runtime's, or one being set up) are never touched.
"""

from __future__ import annotations

import errno
import hashlib
import importlib
import json
import logging
import os
import shutil
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ... import _linux
from ...errors import LaunchError, MountError, SecretdError, UsageError
from ...mount.tmpfs import HostMount
from ...spec import RunSpec, SecretMount

log = logging.getLogger(__name__)

LABEL_SECRETS = "io.secretd.secrets"
LABEL_MOUNT = "io.secretd.mount"
OWNER_NOTE = "owner.json"
CONTAINER_NOTE = "container"
DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
RETRY = 5.0  # seconds between attempts to reach an engine that stopped answering


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
    host_mount = HostMount.create(runtime_dir, mount)
    owner = {
        "engine": engine,
        "host": host,
        "pid": os.getpid(),
        "start": _started(os.getpid()),
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


def teardown(path: Path) -> None:
    """Unmount and remove an engine mount; a mount already gone is fine."""
    try:
        _linux.umount(str(path))
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOENT):
            raise MountError(f"cannot unmount {path}: {os.strerror(exc.errno or 0)}") from None
    try:
        path.rmdir()
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise MountError(f"cannot remove {path}: {exc.strerror}") from None
    log.info("removed secrets mount %s", path.name)


@dataclass(frozen=True)
class Noted:
    """An engine mount's notes."""

    path: Path
    engine: str
    host: str
    detach: bool
    owner_alive: bool
    container: str | None


def read_notes(path: Path) -> Noted | None:
    """The notes of the engine mount at ``path``; ``None`` if it has none, or notes that
    are not what secretd writes (then it is not provably ours, and is left alone)."""
    try:
        owner = json.loads((path / OWNER_NOTE).read_text())
    except (OSError, ValueError):
        return None
    try:
        container: str | None = (path / CONTAINER_NOTE).read_text().strip() or None
    except (OSError, ValueError):
        container = None
    pid = owner.get("pid", 0) if isinstance(owner, dict) else None
    if type(pid) is not int:
        return None
    return Noted(
        path=path,
        engine=str(owner.get("engine", "")),
        host=str(owner.get("host", "")),
        detach=bool(owner.get("detach")),
        owner_alive=pid > 0 and _started(pid) == owner.get("start"),
        container=container,
    )


def _started(pid: int) -> str | None:
    """A process's start time (field 22 of /proc/PID/stat), so a reused pid is not taken
    for the owner."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rpartition(")")[2].split()[19]
    except (OSError, IndexError):
        return None


# -- removing mounts whose container is gone -----------------------------------------


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


class Engine(Protocol):
    name: str

    def live_ids(self) -> set[str]: ...

    def destroy_events(self) -> EventStream: ...

    def close(self) -> None: ...


ENGINES = {  # engine: (module, client class)
    "docker": (f"{__package__}.docker", "DockerEngine"),
    "podman": (f"{__package__}.podman", "PodmanEngine"),
}


def engine_for(engine: str, host: str) -> Engine:
    """The client for an engine named in a note (imports only that engine's module).

    Found by name, like a runtime: the Docker and Podman runtimes import this module (they
    reap before each launch), so it must not import them in turn.
    """
    if engine not in ENGINES:
        raise LaunchError(f"unknown container engine {engine!r} in a secrets mount note")
    module, name = ENGINES[engine]
    client: Engine = getattr(importlib.import_module(module), name)(host)
    return client


def reap(runtime_dir: Path) -> list[str]:
    """Remove engine mounts whose owner exited and whose container no longer exists.

    Returns:
        The names of the mounts removed.

    Raises:
        LaunchError: an engine holding such mounts cannot be asked (they are kept).
    """
    base = runtime_dir / "mounts"
    groups: dict[tuple[str, str], list[Noted]] = {}
    for entry in sorted(base.iterdir()) if base.is_dir() else []:
        noted = read_notes(entry)
        if noted is not None and not noted.owner_alive:
            groups.setdefault((noted.engine, noted.host), []).append(noted)
    reaped = []
    for (name, host), mounts in groups.items():
        engine = engine_for(name, host)
        try:
            live = engine.live_ids()
        finally:
            engine.close()
        for noted in mounts:
            if noted.container in live:
                continue
            try:
                teardown(noted.path)
            except MountError as exc:  # one mount that resists must not keep the others
                log.error("%s", exc)
                continue
            reaped.append(noted.path.name)
    return reaped


def reap_quietly(runtime_dir: Path) -> None:
    """``reap`` before a launch: a failure is logged, it never stops the run."""
    try:
        reap(runtime_dir)
    except SecretdError as exc:
        log.warning("cannot check leftover secrets mounts: %s", exc)


class MountReaper:
    """Removes a detached container's tmpfs when the engine destroys the container.

    ``run`` blocks (run it in a thread); it opens the event stream first and then reaps,
    so a container destroyed in between is not missed, and reconnects when the engine
    restarts. ``stop`` ends it from any thread.
    """

    def __init__(self, runtime_dir: Path, engine: Engine) -> None:
        self.base = (runtime_dir / "mounts").resolve()
        self.runtime_dir = runtime_dir
        self.engine = engine
        self.ready = threading.Event()
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._stream: EventStream | None = None

    def run(self) -> None:
        warned = False
        while not self._stopped.is_set():
            try:
                stream = self.engine.destroy_events()
            except SecretdError as exc:
                log.log(logging.DEBUG if warned else logging.WARNING, "mount reaper: %s", exc)
                warned = True
                self.ready.set()
                self._stopped.wait(RETRY)
                continue
            warned = False
            try:
                self._serve(stream)
            except Exception as exc:  # noqa: BLE001 - the reaper must outlive any one event
                # the type only: a message could quote a label or a note, anyone's text
                log.error("mount reaper: %s; carrying on", type(exc).__name__)
                self.ready.set()
                stream.close()
            self._stopped.wait(1.0)  # the stream ended: the engine restarts, or stop()
        self.engine.close()

    def _serve(self, stream: EventStream) -> None:
        """Reap, then handle each destroy event until the stream ends."""
        reap_quietly(self.runtime_dir)
        with self._lock:
            self._stream = stream
        if self._stopped.is_set():
            stream.close()
        self.ready.set()
        for cid, label in stream:
            try:
                self.destroyed(cid, label)
            except Exception as exc:  # noqa: BLE001 - one event must not end the others
                log.error("mount reaper: %s on a destroy event; carrying on", type(exc).__name__)

    def destroyed(self, cid: str, label: str) -> None:
        """Handle one destroy event; labels anyone can set, so trust only our own notes."""
        path = Path(label).resolve()
        if not label or path.parent != self.base:
            return
        noted = read_notes(path)
        if noted is None or noted.container != cid or (noted.owner_alive and not noted.detach):
            return
        try:
            teardown(path)
        except MountError as exc:
            log.error("%s", exc)

    def stop(self) -> None:
        self._stopped.set()
        with self._lock:
            if self._stream is not None:
                self._stream.close()


def watch_destroyed(
    runtime_dir: Path, engine: str = "docker", host: str | None = None
) -> MountReaper:
    """Start a MountReaper in a daemon thread and return it once it is watching.

    For the daemon: ``reaper = watch_destroyed(config.runtime_dir)`` at start (one per
    engine in use), ``reaper.stop()`` at shutdown. ``host`` defaults to the endpoint the
    CLI would use (``DOCKER_HOST``/context; ``CONTAINER_HOST`` for podman).
    """
    if host is None and engine == "podman":
        host = podman_host()
    reaper = MountReaper(runtime_dir, engine_for(engine, docker_host() if host is None else host))
    threading.Thread(target=reaper.run, name=f"secretd-reaper-{engine}", daemon=True).start()
    reaper.ready.wait(10)
    return reaper
