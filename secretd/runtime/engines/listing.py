"""The Docker and Podman containers that carry secretd's labels, for ``secretd ps``, and
whether a detached one still exists, for the daemon that keeps it (``UntilGone``).

Which engines to ask comes from the notes of the secrets mounts under the runtime
directory (common.py): an engine none of them names is not asked, so ``ps`` imports the
Docker SDK only when secretd has a mount for Docker. The engine is then asked for every
container labelled ``io.secretd.mount``, whoever started it.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...errors import SecretdError
from ...spec import Container, SecretFile
from .common import LABEL_MOUNT, LABEL_SECRETS
from .endpoint import EngineClient, docker_host, engine_client, podman_host
from .reaper import read_notes

log = logging.getLogger(__name__)

CHECK_EVERY = 5.0  # seconds between asking the engine whether a detached container exists


def labelled_containers(runtime_dir: Path) -> list[dict[str, Any]]:
    """``ps`` rows (id, name, image, command, status, state, secrets, runtime) of every
    container with secretd's labels in the engines this runtime directory's mounts name.
    An engine that does not answer is logged and left out."""
    base = runtime_dir / "mounts"
    engines = set()
    for entry in sorted(base.iterdir()) if base.is_dir() else []:
        noted = read_notes(entry)
        if noted is not None:
            engines.add((noted.engine, noted.host))
    rows: list[dict[str, Any]] = []
    for name, host in sorted(engines):
        try:
            client = engine_client(name, host)
            try:
                rows += _rows(client)
            finally:
                client.close()
        except SecretdError as exc:
            log.warning("cannot list %s containers: %s", name, exc.line())
    return rows


def _rows(client: EngineClient) -> list[dict[str, Any]]:
    if client.name == "podman":
        return [_podman_row(item) for item in _podman_ps(client)]
    from .docker import DockerEngine

    assert isinstance(client, DockerEngine)
    with client.errors():
        found = client.client().containers(all=True, filters={"label": LABEL_MOUNT})
    return [_docker_row(item) for item in found]


def _docker_row(item: dict[str, Any]) -> dict[str, Any]:
    names = item.get("Names") or [""]
    return {
        "id": str(item.get("Id", ""))[:12],
        "name": str(names[0]).lstrip("/"),
        "image": str(item.get("Image", "")),
        "command": str(item.get("Command", "")),
        "status": str(item.get("Status", "")),
        "state": _state(str(item.get("State", ""))),
        "secrets": str((item.get("Labels") or {}).get(LABEL_SECRETS, "")),
        "runtime": "docker",
    }


def _podman_ps(client: EngineClient) -> list[dict[str, Any]]:
    from .podman import PodmanEngine

    assert isinstance(client, PodmanEngine)
    argv = [client.command(), "ps", "-a", "--filter", f"label={LABEL_MOUNT}", "--format", "json"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True)
        found = json.loads(done.stdout or "[]")
    except (OSError, subprocess.SubprocessError, ValueError):
        log.warning("podman ps did not answer")
        return []
    return [item for item in found if isinstance(item, dict)]


def _podman_row(item: dict[str, Any]) -> dict[str, Any]:
    names, command = item.get("Names") or [""], item.get("Command") or []
    return {
        "id": str(item.get("Id", ""))[:12],
        "name": str(names[0]),
        "image": str(item.get("Image", "")),
        "command": " ".join(map(str, command)) if isinstance(command, list) else str(command),
        "status": str(item.get("Status", "")),
        "state": _state(str(item.get("State", ""))),
        "secrets": str((item.get("Labels") or {}).get(LABEL_SECRETS, "")),
        "runtime": "podman",
    }


def _state(engine_state: str) -> str:
    """The engine's state as ``ps -a`` filters it: a stopped container is ``exited``."""
    return "running" if engine_state.lower() in ("running", "restarting", "paused") else "exited"


class UntilGone:
    """A detached Docker or Podman container as a Container whose ``wait`` ends (status 0)
    once the engine no longer has it (``docker rm``), asked at most every ``every``
    seconds: the daemon supervises it so (renewing leases, rotating files) after the run
    that started it has returned. A runc container (``removed``) says so itself."""

    def __init__(
        self,
        container: Container,
        engine: str,
        every: float = CHECK_EVERY,
        removed: Callable[[], bool] | None = None,
    ) -> None:
        self.id = container.id
        self.container = container
        self.every = every
        self._client: EngineClient | None = None
        if removed is None:  # an engine's: ask it
            host = podman_host() if engine == "podman" else docker_host()
            self._client = engine_client(engine, host)
        self._removed = removed
        self._checked = 0.0

    def _gone(self) -> bool:
        if self._removed is not None:  # a runtime's own record (oci)
            return self._removed()
        assert self._client is not None
        return self.id not in self._client.live_ids()

    def wait(self, timeout: float | None = None) -> int | None:
        pause = self.every if timeout is None else min(timeout, self.every)
        time.sleep(max(0.0, pause))
        if time.monotonic() - self._checked < self.every:
            return None
        self._checked = time.monotonic()
        try:
            gone = self._gone()
        except SecretdError as exc:  # the engine restarts: ask again later
            log.debug("cannot ask whether %s exists: %s", self.id[:12], exc.line())
            return None
        return 0 if gone else None

    def update(self, files: tuple[SecretFile, ...]) -> None:
        self.container.update(files)

    def signal(self, signum: signal.Signals) -> None:
        self.container.signal(signum)

    def remove(self) -> None:
        self.container.remove()
        if self._client is not None:
            self._client.close()
