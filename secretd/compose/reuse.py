"""A service's tmpfs from an earlier ``secretd compose up``, when it holds exactly the files
this one would write: then compose gets the same paths, finds the same configuration and
leaves the containers running, as plain compose does for an unchanged service.

Each compose tmpfs carries ``compose.json`` in its root (a part never bound into a
container) naming its project and service. A candidate is reused only if every file is
there with the same bytes, mode and owner, and no other file is: any change (a rotated
value, a new target, another mode) makes a new tmpfs, and compose recreates the service's
containers on it.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from ..mount.tmpfs import ABSOLUTE, CONFIGS, SECRETS, HostMount, Layout, layout
from ..spec import SecretMount

COMPOSE_NOTE = "compose.json"


def mark(host_mount: HostMount, project: str, service: str) -> None:
    """Name the project and service a new tmpfs serves."""
    note = json.dumps({"project": project, "service": service})
    (host_mount.path / COMPOSE_NOTE).write_text(note)


def find(runtime_dir: Path, project: str, service: str, planned: SecretMount) -> HostMount | None:
    """The project's tmpfs for ``service`` that already holds ``planned``, or ``None``.

    The HostMount returned holds no handle: ``remove()`` leaves it alone (containers may
    use it), ``mount.tmpfs.remove_host_mount`` takes it down.
    """
    base = runtime_dir / "mounts"
    placed = layout(planned.files, planned.secrets_dir)
    wanted = {"project": project, "service": service}
    for entry in sorted(base.iterdir()) if base.is_dir() else []:
        try:
            note = json.loads((entry / COMPOSE_NOTE).read_text())
        except (OSError, ValueError):
            continue
        if note == wanted and _holds(entry, placed):
            return HostMount(entry, -1, placed, planned.secrets_dir)
    return None


def _holds(path: Path, placed: Layout) -> bool:
    """Whether the tmpfs at ``path`` has exactly ``placed``'s files, byte for byte, with
    their modes and owners (a missing owner is root, as ``fill`` writes it)."""
    expected = {file.target: file for file in placed.files}
    present: set[str] = set()
    for top in (SECRETS, ABSOLUTE, CONFIGS):
        for directory, _, names in os.walk(path / top):
            present.update(str(Path(directory, name).relative_to(path)) for name in names)
    if present != set(expected):
        return False
    for inner, file in expected.items():
        try:
            fd = os.open(path / inner, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return False
        with os.fdopen(fd, "rb") as fh:
            info = os.fstat(fh.fileno())
            if (
                not stat.S_ISREG(info.st_mode)
                or stat.S_IMODE(info.st_mode) != file.mode
                or (info.st_uid, info.st_gid) != (file.uid or 0, file.gid or 0)
                or fh.read(len(file.value) + 1) != file.value
            ):
                return False
    return True
