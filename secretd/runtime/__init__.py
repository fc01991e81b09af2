"""Runtimes: what starts the command. One protocol, found through ``secretd.runtimes``.

``sandbox`` runs a host command in its own mount namespace (no image); ``host`` runs one
without any (``--no-sandbox``: secrets in a private directory on a tmpfs); ``oci`` runs an
image with runc; ``docker`` and ``podman`` hand the container to those engines.
"""

from __future__ import annotations

import os
from typing import Protocol

from .. import plugins
from ..config import Config
from ..errors import LaunchError, UsageError
from ..spec import Container, RunSpec, SecretMount, Stdio

GROUP = "secretd.runtimes"


class Runtime(Protocol):
    name: str

    def launch(self, spec: RunSpec, mount: SecretMount, stdio: Stdio) -> Container:
        """Start the command with its secrets in place; raise before starting on failure."""
        ...


class RuntimeFactory(Protocol):
    def from_config(self, config: Config) -> Runtime: ...


def available_runtimes() -> list[str]:
    return plugins.names(GROUP)


def runtime_name(spec: RunSpec, config: Config) -> str:
    """Which runtime a run uses: the flag, then the config, then what the host offers."""
    if spec.image is None:
        if spec.detach:  # nothing would stop it later, nor give its leases back
            hint = "a host command runs in the foreground: drop -d"
            raise UsageError("-d/--detach is for images", hint)
        if spec.runtime not in ("auto", "sandbox", "host"):
            raise UsageError(f"--runtime {spec.runtime} needs an image", "give IMAGE before CMD")
        return "host" if spec.runtime == "host" else "sandbox"
    chosen = spec.runtime if spec.runtime != "auto" else config.runtime
    if chosen in ("sandbox", "host"):
        raise UsageError(f"the {chosen} runtime runs host commands, not images", "drop --runtime")
    if chosen == "auto":
        from .oci.images import is_local  # image files and secretd's own store: only oci runs them

        if is_local(spec.image, config.state_dir):
            return "oci"
    return chosen if chosen != "auto" else detect_image_runtime()[0]


def detect_image_runtime() -> tuple[str, str]:
    """``(runtime, why)`` for ``--runtime auto`` with an image: Docker if its socket
    answers, else Podman if installed, else the integrated OCI runtime (runc)."""
    from .engines.endpoint import detect_engine

    engine, why = detect_engine()
    return (engine, why) if engine else ("oci", f"{why}; using the integrated OCI runtime (runc)")


def has_local_image(image: str, config: Config) -> bool:
    """Whether the runtime ``--runtime auto`` picks would find ``image`` without pulling
    it: in secretd's store or a file (oci), else in Docker or Podman, whichever answers."""
    from .oci.images import is_local

    if is_local(image, config.state_dir):
        return True
    engine, _ = detect_image_runtime()
    if engine == "docker":
        from .engines.docker import DockerEngine
        from .engines.endpoint import docker_host

        docker = DockerEngine(docker_host())
        try:
            with docker.errors():
                docker.client().inspect_image(image)  # type: ignore[no-untyped-call]
            return True
        except (LaunchError, ImportError):  # no answer, or no SDK to ask with
            return False
        finally:
            docker.close()
    podman = which("podman") if engine == "podman" else None
    if podman:
        import subprocess  # here: a sandbox run starts no program this way

        found = subprocess.run([podman, "image", "exists", image], capture_output=True)
        return found.returncode == 0
    return False


def is_program(name: str) -> bool:
    """Whether the sandbox could run ``name``: a program on PATH, or an executable's path."""
    path = name if "/" in name else which(name)
    return path is not None and os.path.isfile(path) and os.access(path, os.X_OK)


def which(name: str) -> str | None:
    """The executable ``name`` on secretd's own PATH, as ``shutil.which`` finds it
    (``shutil`` imports bz2, lzma and its archivers: 1.5 ms of every run)."""
    for directory in os.get_exec_path():
        path = os.path.join(directory, name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def image_runtime(config: Config) -> tuple[str, str]:
    """``(runtime, why)`` an image would run with unless ``--runtime`` says otherwise."""
    if config.runtime != "auto":
        return config.runtime, f"configured ({config.origins.get('runtime', 'config')})"
    return detect_image_runtime()


def load_runtime(name: str, config: Config) -> Runtime:
    factory: RuntimeFactory = plugins.load(GROUP, name, "runtime")
    return factory.from_config(config)
