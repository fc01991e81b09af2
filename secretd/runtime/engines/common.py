"""What the Docker and Podman runtimes share: the host-side secrets mount a container
binds, its notes and labels (where the engine is: endpoint.py).

A container engine keeps a container after ``secretd`` exits (``-d``, or a run without
``--rm``), so the tmpfs holding its secrets must outlive secretd too, and nobody but the
engine knows when the container goes away. Each engine mount therefore carries notes in
its root, a part never bound into the container: ``owner.json`` (engine, endpoint, the
process that made it, whether it was detached) and ``container`` (the id). Every container
also carries the label ``io.secretd.mount=<tmpfs path>``. reaper.py reads both to remove
the mount once its container is gone.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

from ...errors import MountError
from ...mount import host_mount as create_host_mount
from ...mount.tmpfs import HostMount
from ...spec import RunSpec, SecretMount
from ..process import start_time

log = logging.getLogger(__name__)

LABEL_SECRETS = "io.secretd.secrets"
LABEL_MOUNT = "io.secretd.mount"
OWNER_NOTE = "owner.json"
CONTAINER_NOTE = "container"


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
