"""Removing engine mounts whose container is gone (the notes are described in common.py).

Two things remove them:

- ``MountReaper`` (``watch_destroyed``), run by the daemon in a thread: on each
  ``destroy``/``remove`` event of a labelled container it removes that container's tmpfs.
- ``remove_orphan_mounts``: removes mounts whose owner process has exited and none of
  whose containers (one, or a compose service's several) still exists; the daemon runs
  it when it starts watching, ``secretd run`` before each launch.

A mount whose owner is alive and attached is left alone: that process removes it itself.
Mounts without notes (another runtime's, or one being set up) are never touched.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from ...errors import MountError, SecretdError
from ...mount.tmpfs import remove_host_mount
from ..process import start_time
from .common import CONTAINER_NOTE, OWNER_NOTE
from .endpoint import EngineClient, EventStream, docker_host, engine_client, podman_host

log = logging.getLogger(__name__)

RETRY = 5.0  # seconds between attempts to reach an engine that stopped answering


@dataclass(frozen=True)
class Noted:
    """An engine mount's notes."""

    path: Path
    engine: str
    host: str
    detach: bool
    owner_alive: bool
    container: str | None
    containers: frozenset[str] = frozenset()  # all of them, when several share the mount


def read_notes(path: Path) -> Noted | None:
    """The notes of the engine mount at ``path``; ``None`` if it has none, or notes that
    are not what secretd writes (then it is not provably ours, and is left alone)."""
    try:
        owner = json.loads((path / OWNER_NOTE).read_text())
    except (OSError, ValueError):
        return None
    try:  # one id a line: a compose service's containers share one mount
        containers = (path / CONTAINER_NOTE).read_text().split()
    except (OSError, ValueError):
        containers = []
    pid = owner.get("pid", 0) if isinstance(owner, dict) else None
    if type(pid) is not int:
        return None
    return Noted(
        path=path,
        engine=str(owner.get("engine", "")),
        host=str(owner.get("host", "")),
        detach=bool(owner.get("detach")),
        owner_alive=pid > 0 and str(start_time(pid)) == owner.get("start"),
        container=containers[0] if containers else None,
        containers=frozenset(containers),
    )


def remove_orphan_mounts(runtime_dir: Path) -> list[str]:
    """Remove engine mounts whose container no longer exists, once their owner exited or
    left them to a detached container (the daemon that started it is alive, but no longer
    holds the mount).

    Returns:
        The names of the mounts removed.

    Raises:
        LaunchError: an engine holding such mounts cannot be asked (they are kept).
    """
    base = runtime_dir / "mounts"
    groups: dict[tuple[str, str], list[Noted]] = {}
    for entry in sorted(base.iterdir()) if base.is_dir() else []:
        noted = read_notes(entry)
        if noted is not None and (not noted.owner_alive or noted.detach and noted.containers):
            groups.setdefault((noted.engine, noted.host), []).append(noted)
    reaped = []
    for (name, host), mounts in groups.items():
        engine = engine_client(name, host)
        try:
            live = engine.live_ids()
        finally:
            engine.close()
        for noted in mounts:
            if noted.containers & live:
                continue
            if _remove(noted.path):  # one mount that resists must not keep the others
                reaped.append(noted.path.name)
    return reaped


def _remove(path: Path) -> bool:
    """Remove one orphaned engine mount; a failure is logged (it names the path)."""
    try:
        remove_host_mount(path)
    except MountError as exc:
        log.error("%s", exc)
        return False
    log.info("removed secrets mount %s", path.name)
    return True


def remove_orphan_mounts_quietly(runtime_dir: Path) -> None:
    """``remove_orphan_mounts`` before a launch: a failure is logged, never raised."""
    try:
        remove_orphan_mounts(runtime_dir)
    except SecretdError as exc:
        log.warning("cannot check leftover secrets mounts: %s", exc)


class MountReaper:
    """Removes a detached container's tmpfs when the engine destroys the container.

    ``run`` blocks (run it in a thread); it opens the event stream first and then reaps,
    so a container destroyed in between is not missed, and reconnects when the engine
    restarts. ``stop`` ends it from any thread.
    """

    def __init__(self, runtime_dir: Path, engine: EngineClient) -> None:
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
        remove_orphan_mounts_quietly(self.runtime_dir)
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
        if noted is None or cid not in noted.containers:
            return
        if noted.owner_alive and not noted.detach:
            return
        if noted.containers - {cid} & self.engine.live_ids():
            return  # another container still uses it
        _remove(path)

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
    client = engine_client(engine, docker_host() if host is None else host)
    reaper = MountReaper(runtime_dir, client)
    threading.Thread(target=reaper.run, name=f"secretd-reaper-{engine}", daemon=True).start()
    reaper.ready.wait(10)
    return reaper
