"""Where a container engine is, and a client for it by name.

``docker_host`` and ``podman_host`` find the endpoint the engine's own CLI would use,
``require_local`` refuses one a bind mount cannot reach, ``detect_engine`` picks one for
``--runtime auto`` without importing an SDK, and ``engine_client`` builds the client an
engine mount's note names (``EngineClient``: what the reaper and ``ps`` ask of it).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import socket
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Protocol

from ...errors import LaunchError, UsageError

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"


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


class EngineClient(Protocol):
    """What the reaper and ``ps`` ask of a container engine (``DockerEngine``,
    ``PodmanEngine``)."""

    name: str
    host: str

    def live_ids(self) -> set[str]: ...

    def destroy_events(self) -> EventStream: ...

    def close(self) -> None: ...


ENGINES = {  # engine: (module, client class)
    "docker": (f"{__package__}.docker", "DockerEngine"),
    "podman": (f"{__package__}.podman", "PodmanEngine"),
}


def engine_client(engine: str, host: str) -> EngineClient:
    """The client for an engine named in a note (imports only that engine's module).

    Found by name, like a runtime: docker.py and podman.py import this module, so it
    must not import them in turn.
    """
    if engine not in ENGINES:
        raise LaunchError(f"unknown container engine {engine!r} in a secrets mount note")
    module, name = ENGINES[engine]
    client: EngineClient = getattr(importlib.import_module(module), name)(host)
    return client
