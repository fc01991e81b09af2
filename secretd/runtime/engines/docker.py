"""The Docker Engine runtime: a plain (non-swarm) container gets Swarm's ``/run/secrets``.

Docker mounts secrets only for swarm services; compose's file secrets are binds of a disk
file that ignore uid/gid/mode (docker/compose#9648). secretd fills a tmpfs on this host
(``mount.tmpfs.HostMount``) and binds its ``secrets/`` directory read-only at the secrets
directory, each absolute target as a read-only bind of its own. Values go from secretd into
the tmpfs and nowhere else: never into the create request, so never into ``docker
inspect``, an image or the container's writable layer. That only works when the engine
shares this host's filesystem, hence ``require_local``.

The tmpfs lives as long as the container. Attached runs remove it when the command ends.
Detached runs (``-d``) leave it behind; the tmpfs root (never bound into the container)
holds notes saying who made it and for which container, and the container carries
``io.secretd.mount=<tmpfs path>``, so ``reaper.MountReaper`` removes it on the
container's ``destroy`` event (see common.py, shared with podman.py).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import TYPE_CHECKING, Any

from ..._errormap import ErrorMap, Rule, mapped
from ...config import Config
from ...errors import CommandNotFound, CommandNotRunnable, LaunchError, UsageError
from ...mount.tmpfs import HostMount
from ...spec import RunSpec, SecretFile, SecretMount, Stdio
from .attach import Attachment, write_all
from .base import EngineRuntime
from .common import (
    CONTAINER_NOTE,
    LABEL_MOUNT,
    engine_labels,
    secret_binds,
    under_volume,
)
from .endpoint import EventStream, docker_host, require_local

if TYPE_CHECKING:
    import docker
    import requests

log = logging.getLogger(__name__)


class DockerClient:
    """One Docker endpoint's SDK client, made on first use (the SDK is imported then, never
    by ``--help``), and the SDK's exceptions as ours: what ``DockerEngine``, a Swarm
    manager (``runtime.swarm.Swarm``) and ``audit`` share."""

    runtime = "docker"  # the ``runtime`` field of the errors ``errors`` raises

    def __init__(self, host: str) -> None:
        self.host = host
        self._api: docker.APIClient | None = None

    def client(self) -> docker.APIClient:
        """The endpoint's client, connected on the first call and kept until ``close``."""
        if self._api is None:
            self._api = self._connect()
        return self._api

    def _connect(self) -> docker.APIClient:
        """A new client; ``Swarm`` overrides it to add TLS."""
        import docker

        with self.errors():
            return docker.APIClient(base_url=self.host, version="auto")

    def close(self) -> None:
        if self._api is not None:
            self._api.close()
            self._api = None

    @contextmanager
    def errors(self) -> Iterator[None]:
        """Map the SDK's exceptions onto ours (``docker_errors``), without chaining their
        text into tracebacks."""
        fields = {"runtime": self.runtime, "host": self.host}
        with mapped(docker_errors(), fields, host=self.host, detail=explain):
            yield


class DockerEngine(DockerClient):
    """The local Docker engine that containers run on: it must share this host's
    filesystem (``require_local``), since their secrets are binds of a tmpfs here."""

    name = "docker"

    def __init__(self, host: str) -> None:
        require_local(host, "Docker")
        super().__init__(host)

    def live_ids(self) -> set[str]:
        """Ids of the containers (any state) that have a secretd mount."""
        with self.errors():
            found = self.client().containers(all=True, quiet=True, filters={"label": LABEL_MOUNT})
        return {item["Id"] for item in found}

    def destroy_events(self) -> EventStream:
        """``(container id, io.secretd.mount)`` for each container Docker destroys."""
        with self.errors():
            stream = self.client().events(
                decode=True,
                filters={"type": "container", "event": "destroy", "label": LABEL_MOUNT},
            )

        def pairs() -> Iterator[tuple[str, str]]:
            import docker.errors
            import requests.exceptions

            try:
                for event in stream:
                    actor = event.get("Actor", {})
                    yield actor.get("ID", ""), actor.get("Attributes", {}).get(LABEL_MOUNT, "")
            except (OSError, docker.errors.DockerException, requests.exceptions.RequestException):
                log.debug("docker event stream ended")

        return EventStream(pairs(), stream.close)


@cache
def docker_errors() -> ErrorMap:
    """The Docker SDK's (and requests') exceptions as ours, most specific first."""
    import docker.errors as de
    import requests.exceptions as rq

    return (
        (de.ImageNotFound, Rule(
            LaunchError, "image not found: {detail}",
            "build it, or 'docker pull'/'docker load' it",
        )),
        (de.APIError, Rule(LaunchError, "Docker refused the request: {detail}")),
        ((de.DockerException, rq.RequestException), Rule(
            LaunchError, "cannot reach Docker at {host}",
            "start dockerd, or point DOCKER_HOST or 'docker context use' at it",
        )),
    )  # fmt: skip


def explain(exc: Any) -> str:
    """The Docker daemon's own words for a refused request, for an error line (they name
    images, paths and flags, never secret values: a container's values are in no request
    secretd sends it)."""
    return str(getattr(exc, "explanation", None) or exc).strip()


class DockerRuntime(EngineRuntime[DockerEngine]):
    """``--runtime docker``: create, attach, start, wait, as ``docker run`` does."""

    name = "docker"

    @classmethod
    def from_config(cls, config: Config) -> DockerRuntime:
        """The engine of ``DOCKER_HOST`` or the current context; refused when remote."""
        return cls(DockerEngine(docker_host()), config.runtime_dir)

    def launch(self, spec: RunSpec, mount: SecretMount, stdio: Stdio) -> DockerContainer:
        """Start the container with its secrets bound read-only.

        Raises:
            LaunchError: Docker cannot be reached or refused the container (exit 125).
            CommandNotFound / CommandNotRunnable: the command cannot be run (127 / 126).
        """
        host_mount = self.open_mount(spec, mount)
        cid = None
        try:
            client = self.engine.client()
            with self.engine.errors():
                args = _create_args(client, spec, host_mount, _console(spec, stdio))
                cid = client.create_container(**args)["Id"]
            (host_mount.path / CONTAINER_NOTE).write_text(cid)
            return self._start(client, cid, spec, host_mount, stdio)
        except BaseException:
            if cid is not None:
                _force_remove(self.engine, cid)
            host_mount.remove()
            raise

    def _start(
        self, client: docker.APIClient, cid: str, spec: RunSpec, host_mount: HostMount, stdio: Stdio
    ) -> DockerContainer:
        sock = waiter = None
        try:
            with self.engine.errors():
                if not spec.detach:
                    params = {"stdin": int(spec.interactive), "stdout": 1, "stderr": 1, "stream": 1}
                    sock = _real_socket(client.attach_socket(cid, params=params))
                    waiter = _register_wait(client, cid, "removed" if spec.remove else "next-exit")
            _start_container(self.engine, cid)
        except BaseException:
            for handle in (sock, waiter):
                if handle is not None:
                    handle.close()
            raise
        console = _console(spec, stdio)
        if console is not None:
            _resize(self.engine, cid, console)
        if spec.detach:
            write_all(stdio[1], f"{cid}\n".encode())
            return DockerContainer(self.engine, cid, host_mount, None)
        assert sock is not None and waiter is not None
        attached = Attachment(stdio, sock, waiter, raw=spec.tty, interactive=spec.interactive)
        terminal = stdio[1] if console is not None else None
        return DockerContainer(self.engine, cid, host_mount, attached, terminal)


def _create_args(
    client: docker.APIClient,
    spec: RunSpec,
    host_mount: HostMount,
    console: os.terminal_size | None,
) -> dict[str, Any]:
    """``docker run``'s flags as create_container arguments; secrets only as binds."""
    from docker.types import Mount
    from docker.utils.ports import build_port_bindings

    try:
        ports = build_port_bindings(list(spec.publish))
    except ValueError as exc:
        raise UsageError(f"invalid -p: {exc}", "use [IP:][HOST:]CONTAINER[/PROTO]") from None
    exists = _image_directories(client, spec, host_mount) if host_mount.placed.units else None
    mounts = [
        Mount(target, str(source), type="bind", read_only=True)
        for source, target in secret_binds(spec, host_mount, exists)
    ]
    host_config = client.create_host_config(
        binds=list(spec.volumes) or None,
        mounts=mounts,
        port_bindings=ports or None,
        network_mode=spec.network,
        restart_policy=_restart_policy(spec.restart),
        auto_remove=spec.remove,
        read_only=spec.read_only or None,
    )
    if console is not None:  # honoured from API 1.42; older engines get _resize only
        host_config["ConsoleSize"] = [console.lines, console.columns]
    entrypoint = None if spec.entrypoint is None else [spec.entrypoint]
    return {
        "image": spec.image,
        "command": list(spec.command) or None,
        "hostname": spec.hostname,
        "user": spec.user,
        "detach": spec.detach,
        "stdin_open": spec.interactive,
        "tty": spec.tty,
        "ports": [tuple(key.split("/", 1)) if "/" in key else key for key in ports] or None,
        "environment": [f"{key}={value}" for key, value in spec.env],
        "name": spec.name,
        "entrypoint": entrypoint,
        "working_dir": spec.workdir,
        "host_config": host_config,
        "labels": engine_labels(spec, host_mount),
    }


def _restart_policy(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    name, _, retries = text.partition(":")
    if name not in ("no", "always", "unless-stopped", "on-failure") or (
        retries and (name != "on-failure" or not retries.isdigit())
    ):
        raise UsageError(
            f"invalid --restart {text!r}", "use no, always, unless-stopped or on-failure[:N]"
        )
    return {"Name": name, "MaximumRetryCount": int(retries or 0)}


def _real_socket(raw: Any) -> socket.socket:
    """The hijacked connection under the SDK's file object (unix sockets only, see
    require_local), so we can half-close it when stdin ends; ours alone, so that closing
    it closes it: the SDK's file object keeps the socket open past ``close`` and is freed
    only with its response's reference cycle (a descriptor per run in the daemon)."""
    sock = getattr(raw, "_sock", raw)
    if not isinstance(sock, socket.socket):
        raise LaunchError("cannot attach to the container: unexpected connection type")
    timeout = sock.gettimeout()
    owned = socket.socket(sock.family, sock.type, fileno=sock.detach())
    owned.settimeout(timeout)
    return owned


def _register_wait(client: docker.APIClient, cid: str, condition: str) -> requests.Response:
    """Ask for the exit status before starting, as ``docker run`` does: Docker sends the
    response headers once the wait is registered, so a command that ends at once (or an
    auto-removed container) cannot be missed. The body arrives when it ends."""
    url = f"{client.base_url}/v{client.api_version}/containers/{cid}/wait"
    response = client.post(url, params={"condition": condition}, stream=True)
    if response.status_code != 200:
        response.close()
        raise LaunchError(f"Docker refused to wait for container {cid[:12]}")
    return response


def _start_container(engine: DockerEngine, cid: str) -> None:
    """Start; a command that cannot run exits 127/126 as with ``docker run``."""
    import docker.errors

    with engine.errors():
        try:
            engine.client().start(cid)
        except docker.errors.APIError as exc:
            text = explain(exc)
            if "executable file not found" in text or "no such file or directory" in text:
                raise CommandNotFound(f"cannot run the command: {text}") from None
            if "permission denied" in text or "is a directory" in text:
                raise CommandNotRunnable(f"cannot run the command: {text}") from None
            raise LaunchError(f"cannot start the container: {text}") from None


def _console(spec: RunSpec, stdio: Stdio) -> os.terminal_size | None:
    return os.get_terminal_size(stdio[1]) if spec.tty and os.isatty(stdio[1]) else None


def _resize(engine: DockerEngine, cid: str, size: os.terminal_size) -> None:
    """Give the container's terminal the client's size (at start and on SIGWINCH)."""
    try:
        with engine.errors():
            engine.client().resize(cid, height=size.lines, width=size.columns)
    except LaunchError as exc:
        log.debug("cannot resize the terminal of %s: %s", cid[:12], exc)


def _image_directories(
    client: docker.APIClient, spec: RunSpec, host_mount: HostMount
) -> Callable[[str], bool]:
    """Which directories of absolute targets the container would have without us (in the
    image, or at or below a volume): those are bound file by file, never hidden. Asked
    of a created, never started, container of the image (``HEAD .../archive``, what
    ``docker cp`` uses to stat a path), removed at once."""
    wanted = [unit.target for unit in host_mount.placed.units]
    present = {d for d in wanted if under_volume(spec, d)}
    probe = client.create_container(
        image=spec.image, command=["true"], entrypoint=[], network_disabled=True
    )["Id"]
    try:
        url = client._url("/containers/{0}/archive", probe)  # type: ignore[attr-defined]
        for directory in set(wanted) - present:
            if client.head(url, params={"path": directory}).status_code != 404:
                present.add(directory)  # there, or unknown: never hidden
    finally:
        client.remove_container(probe, force=True)
    return present.__contains__


def _force_remove(engine: DockerEngine, cid: str) -> None:
    try:
        with engine.errors():
            engine.client().remove_container(cid, force=True)
    except LaunchError as exc:
        log.debug("container %s already gone: %s", cid[:12], exc)


class DockerContainer:
    """A container started by DockerRuntime (the Container protocol)."""

    def __init__(
        self,
        engine: DockerEngine,
        cid: str,
        host_mount: HostMount,
        attached: Attachment | None,
        terminal: int | None = None,
    ) -> None:
        self.id = cid
        self._engine = engine
        self._mount = host_mount
        self._attached = attached
        self._terminal = terminal
        self._removed = False

    def wait(self, timeout: float | None = None) -> int | None:
        """The command's exit status; 0 at once for ``-d`` (the container runs on)."""
        if self._attached is None:
            return 0
        return self._attached.wait(timeout)

    def update(self, files: tuple[SecretFile, ...]) -> None:
        self._mount.update(files)

    def signal(self, signum: int) -> None:
        """Relay a signal; a window-size change resizes the container's terminal instead
        (the engine owns that terminal: a SIGWINCH alone would not change its size)."""
        if signum == signal.SIGWINCH:
            if self._terminal is not None:
                _resize(self._engine, self.id, os.get_terminal_size(self._terminal))
            return
        try:
            with self._engine.errors():
                self._engine.client().kill(self.id, signal=int(signum))
        except LaunchError as exc:
            log.debug("cannot signal %s: %s", self.id[:12], exc)

    def remove(self) -> None:
        """End an attached run: stop copying, and drop the tmpfs (a detached one stays
        until Docker destroys the container)."""
        if self._removed:
            return
        self._removed = True
        if self._attached is not None:
            if not self._attached.exited.is_set():
                self.signal(signal.SIGKILL)
                self._attached.exited.wait(10)
            self._attached.close()
            self._mount.remove()
        else:
            self._mount.keep()
        self._engine.close()
