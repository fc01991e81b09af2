"""What the Docker and Podman runtimes do alike before their engine takes over: refuse a
run without an image, remove the mounts of containers that are gone, and open the
container's host-side secrets mount with its owner note (common.py).

Apart from common.py because it removes orphans through reaper.py, which imports
common.py; the runtimes differ in everything after this.
"""

from __future__ import annotations

from pathlib import Path
from typing import Generic, TypeVar

from ...errors import UsageError
from ...mount.tmpfs import HostMount
from ...spec import RunSpec, SecretMount
from .common import open_mount
from .endpoint import EngineClient
from .reaper import remove_orphan_mounts_quietly

E = TypeVar("E", bound=EngineClient)


class EngineRuntime(Generic[E]):
    """A runtime that hands containers to an engine (``engine``) and keeps their secrets
    mounts under ``runtime_dir``."""

    name: str

    def __init__(self, engine: E, runtime_dir: Path) -> None:
        self.engine = engine
        self.runtime_dir = runtime_dir

    def open_mount(self, spec: RunSpec, mount: SecretMount) -> HostMount:
        """The filled host mount for a new container of ``spec``.

        Raises:
            UsageError: ``spec`` names no image.
            MountError: the tmpfs cannot be made.
        """
        if spec.image is None:
            raise UsageError(f"--runtime {self.name} needs an image", "give IMAGE before CMD")
        remove_orphan_mounts_quietly(self.runtime_dir)
        return open_mount(self.runtime_dir, mount, self.name, self.engine.host, spec.detach)
