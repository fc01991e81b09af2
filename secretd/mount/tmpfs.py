"""tmpfs mounts for secrets: sized, ``nosuid,nodev,noexec``, never swapped, root-only.

One tmpfs holds a run's files in a fixed layout: ``secrets/`` is what the command sees at
its secrets directory, ``abs/N`` is the file for the N-th absolute target. Runtimes bind
those read-only into the container; secretd keeps a read-write handle (a directory file
descriptor) so it can rotate files while the command runs.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import _linux, trust
from ..errors import MountError
from ..spec import SecretFile, SecretMount
from .atomic import DIR_FLAGS, write_files

log = logging.getLogger(__name__)

SECRETS = "secrets"
ABSOLUTE = "abs"
MOUNT_FLAGS = _linux.MS_NOSUID | _linux.MS_NODEV | _linux.MS_NOEXEC
PAGE = 4096


def size_for(files: Sequence[SecretFile]) -> int:
    """A cap with room for every file twice (old and new version during a rotation)."""
    pages = sum(-(-max(len(f.value), 1) // PAGE) for f in files)
    return (2 * pages + 64) * PAGE


def detached_tmpfs(size: int) -> tuple[int, bool]:
    """A new tmpfs attached nowhere yet: ``(descriptor of its root, noswap honoured)``.

    Safe between fork and exec: it makes system calls only (no logging, no locks).
    """
    fs_fd = _linux.fsopen("tmpfs")
    try:
        _linux.fsconfig(fs_fd, "source", "secretd")
        _linux.fsconfig(fs_fd, "size", str(size))
        _linux.fsconfig(fs_fd, "mode", "0755")
        noswap = True
        try:
            _linux.fsconfig(fs_fd, "noswap")
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            noswap = False
        _linux.fscreate(fs_fd)
        attributes = _linux.MOUNT_ATTR_NOSUID | _linux.MOUNT_ATTR_NODEV | _linux.MOUNT_ATTR_NOEXEC
        return _linux.fsmount(fs_fd, attributes), noswap
    finally:
        os.close(fs_fd)


def mount_tmpfs(path: str, size: int) -> None:
    """Mount a tmpfs at ``path``; without ``noswap`` where the kernel does not know it."""
    options = f"size={size},mode=0755"
    try:
        _linux.mount("secretd", path, "tmpfs", MOUNT_FLAGS, options + ",noswap")
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        log.debug("kernel refused tmpfs noswap; mounting %s without it", path)
        _linux.mount("secretd", path, "tmpfs", MOUNT_FLAGS, options)


@dataclass(frozen=True)
class Layout:
    """Where each file of a SecretMount lives inside the tmpfs, and what is bound where."""

    files: tuple[SecretFile, ...]
    binds: tuple[tuple[str, str], ...]  # (path inside the tmpfs, absolute target)


def layout(files: Sequence[SecretFile]) -> Layout:
    placed: list[SecretFile] = []
    binds: list[tuple[str, str]] = []
    for file in files:
        group = None  # each absolute target is bound on its own: no directory to swap
        if file.target.startswith("/"):
            inner = f"{ABSOLUTE}/{len(binds)}"
            binds.append((inner, file.target))
        else:
            inner = f"{SECRETS}/{file.target}"
            group = f"{SECRETS}/{file.group}" if file.group else None
        placed.append(SecretFile(inner, file.value, file.uid, file.gid, file.mode, group))
    return Layout(tuple(placed), tuple(binds))


def fill(root_fd: int, files: Sequence[SecretFile], owner: tuple[int, int]) -> Layout:
    """Write a mount's files below ``root_fd`` (creating ``secrets/`` even when empty)."""
    placed = layout(files)
    if not _exists(root_fd, SECRETS):
        os.mkdir(SECRETS, 0o755, dir_fd=root_fd)
    write_files(root_fd, placed.files, owner)
    return placed


def _exists(dir_fd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


class HostMount:
    """A tmpfs on the host under ``<runtime_dir>/mounts/<id>`` (a 0700 directory), for
    runtimes that bind it into a container (runc, Docker, Podman)."""

    def __init__(self, path: Path, root_fd: int, placed: Layout) -> None:
        self.path = path
        self._root_fd = root_fd
        self.placed = placed

    @classmethod
    def create(cls, runtime_dir: Path, mount: SecretMount) -> HostMount:
        """Mount and fill a new tmpfs.

        Raises:
            MountError: the tmpfs cannot be mounted or filled; nothing is left behind.
        """
        base = trust.runtime_dir(runtime_dir) / "mounts"
        base.mkdir(mode=0o700, exist_ok=True)
        path = base / secrets.token_hex(8)
        path.mkdir(mode=0o700)
        root_fd = -1
        try:
            mount_tmpfs(str(path), max(mount.size, size_for(mount.files)))
            root_fd = os.open(path, DIR_FLAGS)
            placed = fill(root_fd, mount.files, (0, 0))
        except OSError as exc:
            _teardown(path, root_fd)
            raise MountError(f"cannot prepare the secrets mount: {exc.strerror}") from None
        except BaseException:
            _teardown(path, root_fd)
            raise
        log.debug("mounted secrets tmpfs at %s", path)
        return cls(path, root_fd, placed)

    @property
    def secrets_path(self) -> Path:
        return self.path / SECRETS

    @property
    def binds(self) -> list[tuple[Path, str]]:
        """``(host path, container path)`` for every absolute target."""
        return [(self.path / inner, target) for inner, target in self.placed.binds]

    def update(self, files: Sequence[SecretFile]) -> None:
        fill(self._root_fd, files, (0, 0))

    def remove(self) -> None:
        if self._root_fd >= 0:
            _teardown(self.path, self._root_fd)
            self._root_fd = -1

    def keep(self) -> None:
        """Close secretd's handle but leave the tmpfs mounted, for a detached container
        that outlives the run (runtime/engines.py removes it with the container)."""
        if self._root_fd >= 0:
            os.close(self._root_fd)
            self._root_fd = -1


def _teardown(path: Path, root_fd: int) -> None:
    if root_fd >= 0:
        os.close(root_fd)
    try:
        _linux.umount(str(path))
    except OSError as exc:
        if exc.errno != errno.EINVAL:  # EINVAL: not mounted (a failed create)
            raise
    path.rmdir()


def reap(runtime_dir: Path) -> list[str]:
    """Unmount and remove every host mount a previous secretd left behind."""
    base = runtime_dir / "mounts"
    if not base.is_dir():
        return []
    reaped = []
    for entry in base.iterdir():
        _teardown(entry, -1)
        reaped.append(entry.name)
    return reaped
