"""tmpfs mounts for secrets: sized, ``nosuid,nodev,noexec``, never swapped, root-only.

One tmpfs holds a run's files in a fixed layout: ``secrets/`` is what the command sees at
its secrets directory; ``abs/<key>/`` holds the absolute targets that share one directory
of the container (``key`` is derived from that directory, so a later ``update()`` of any
subset of the files writes the same paths); ``configs/<key>/`` does the same for configs,
on a second tmpfs without ``noexec`` (a config may be a script) mounted there.

Runtimes bind those read-only into the container. A directory the container lacks is
bound whole, so a file replaced by ``rename(2)`` is seen inside (a single-file bind keeps
the old inode). A directory it already has is never covered, which would hide the
image's own files there (Docker's configs at /etc/nginx/nginx.conf leave mime.types
visible): its targets are bound file by file, and a later replacement of them is not
seen inside; docs/configs.md says so. secretd keeps a read-write handle (a directory file
descriptor) so it can rotate files while the command runs.
"""

from __future__ import annotations

import errno
import logging
import os
import posixpath
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import _linux, trust
from ..errors import MountError
from ..spec import DEFAULT_SECRETS_DIR, SecretFile, SecretMount
from .atomic import DIR_FLAGS, open_dir, write_files

log = logging.getLogger(__name__)

SECRETS = "secrets"
ABSOLUTE = "abs"
CONFIGS = "configs"
MOUNT_FLAGS = _linux.MS_NOSUID | _linux.MS_NODEV | _linux.MS_NOEXEC
PAGE = 4096


def size_for(files: Sequence[SecretFile]) -> int:
    """A cap with room for every file twice (old and new version during a rotation)."""
    pages = sum(-(-max(len(f.value), 1) // PAGE) for f in files)
    return (2 * pages + 64) * PAGE


def detached_tmpfs(size: int, noexec: bool = True) -> tuple[int, bool]:
    """A new tmpfs attached nowhere yet: ``(descriptor of its root, noswap honoured)``.
    Without ``noexec`` when it holds configs: each view of it gets its own flags.

    Safe between fork and exec: system calls through ``os`` and ``_linux`` (no logging,
    no import, no lock).
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
        attributes = _linux.MOUNT_ATTR_NOSUID | _linux.MOUNT_ATTR_NODEV
        if noexec:
            attributes |= _linux.MOUNT_ATTR_NOEXEC
        return _linux.fsmount(fs_fd, attributes), noswap
    finally:
        os.close(fs_fd)


def mount_tmpfs(path: str, size: int, noexec: bool = True) -> None:
    """Mount a tmpfs at ``path``; without ``noswap`` where the kernel does not know it."""
    options = f"size={size},mode=0755"
    flags = MOUNT_FLAGS if noexec else MOUNT_FLAGS & ~_linux.MS_NOEXEC
    try:
        _linux.mount("secretd", path, "tmpfs", flags, options + ",noswap")
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        log.debug("kernel refused tmpfs noswap; mounting %s without it", path)
        _linux.mount("secretd", path, "tmpfs", flags, options)


@dataclass(frozen=True)
class Unit:
    """The absolute targets in one directory of the container, kept together in the
    tmpfs directory ``inner`` so they can be bound as one directory."""

    inner: str  # "abs/<key>" or "configs/<key>"
    target: str  # the container's directory
    entries: tuple[tuple[str, str], ...]  # (inner path, target) of each file or tree in it


@dataclass(frozen=True)
class Layout:
    """Where each file of a SecretMount lives inside the tmpfs, and what is bound where.
    ``dirs`` are mount points made for units nested in another unit's directory."""

    files: tuple[SecretFile, ...]
    units: tuple[Unit, ...] = ()
    dirs: tuple[str, ...] = ()

    def binds(self, exists: Callable[[str], bool]) -> tuple[tuple[str, str], ...]:
        """``(path inside the tmpfs, absolute target)``, parents before children: a
        unit's directory where ``exists`` says the container lacks it, else its files.
        Directory or file, a path under ``configs/`` allows exec, any other does not."""
        binds: list[tuple[str, str]] = []
        for unit in self.units:
            binds.extend(unit.entries if exists(unit.target) else [(unit.inner, unit.target)])
        return tuple(sorted(binds, key=lambda bind: bind[1].count("/")))


def area_key(directory: str) -> str:
    """A stable tmpfs name for a container directory: the same in every ``layout()``.
    ``hashlib`` is imported here: image runs use this, a sandbox run does not (~2 ms)."""
    import hashlib

    return hashlib.sha256(directory.encode()).hexdigest()[:16]


def layout(files: Sequence[SecretFile], secrets_dir: str = DEFAULT_SECRETS_DIR) -> Layout:
    """Place files in the tmpfs. A config that shares its directory with a secret lives
    with the secret (on the ``noexec`` tmpfs), so that directory is one unit."""
    secret_dirs = {
        posixpath.dirname(f.group or f.target)
        for f in files
        if f.target.startswith("/") and not f.config
    }
    placed: list[SecretFile] = []
    units: dict[str, tuple[str, dict[str, str]]] = {}
    for file in files:
        if not file.target.startswith("/"):
            inner = f"{SECRETS}/{file.target}"
            group = f"{SECRETS}/{file.group}" if file.group else None
            placed.append(SecretFile(inner, file.value, file.uid, file.gid, file.mode, group))
            continue
        top = file.group or file.target
        directory, base = posixpath.split(top)
        config = file.config and directory not in secret_dirs
        unit_inner = f"{CONFIGS if config else ABSOLUTE}/{area_key(directory)}"
        units.setdefault(directory, (unit_inner, {}))[1][f"{unit_inner}/{base}"] = top
        inner = unit_inner + file.target[len(directory.rstrip("/")) :]
        group = f"{unit_inner}/{base}" if file.group else None
        placed.append(
            SecretFile(inner, file.value, file.uid, file.gid, file.mode, group, config)
        )
    nested = [*units, secrets_dir]
    dirs = tuple(
        inner + other[len(directory) :]
        for directory, (inner, _) in units.items()
        for other in nested
        if other.startswith(directory.rstrip("/") + "/") and directory != "/"
    )
    return Layout(
        tuple(placed),
        tuple(Unit(inner, d, tuple(entries.items())) for d, (inner, entries) in units.items()),
        dirs,
    )


def uses_configs(files: Sequence[SecretFile], secrets_dir: str = DEFAULT_SECRETS_DIR) -> bool:
    """Whether any file lands on the configs tmpfs."""
    return any(f.config for f in layout(files, secrets_dir).files)


def fill(
    root_fd: int,
    files: Sequence[SecretFile],
    owner: tuple[int, int],
    secrets_dir: str = DEFAULT_SECRETS_DIR,
) -> Layout:
    """Write a mount's files below ``root_fd`` (creating ``secrets/`` even when empty)."""
    placed = layout(files, secrets_dir)
    if not _exists(root_fd, SECRETS):
        os.mkdir(SECRETS, 0o755, dir_fd=root_fd)
    for directory in placed.dirs:
        os.close(open_dir(root_fd, directory.split("/")))
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

    def __init__(
        self, path: Path, root_fd: int, placed: Layout, secrets_dir: str = DEFAULT_SECRETS_DIR
    ) -> None:
        self.path = path
        self._root_fd = root_fd
        self.placed = placed
        self.secrets_dir = secrets_dir

    @classmethod
    def create(cls, runtime_dir: Path, mount: SecretMount) -> HostMount:
        """Mount and fill a new tmpfs.

        Raises:
            MountError: the tmpfs cannot be mounted or filled; nothing is left behind.
        """
        base = trust.runtime_dir(runtime_dir) / "mounts"
        base.mkdir(mode=0o700, exist_ok=True)
        path = base / os.urandom(8).hex()
        path.mkdir(mode=0o700)
        root_fd = -1
        try:
            mount_tmpfs(str(path), max(mount.size, size_for(mount.files)))
            root_fd = os.open(path, DIR_FLAGS)
            if uses_configs(mount.files, mount.secrets_dir):
                os.mkdir(CONFIGS, 0o755, dir_fd=root_fd)
                configs = [f for f in mount.files if f.config]
                mount_tmpfs(str(path / CONFIGS), size_for(configs), noexec=False)
            placed = fill(root_fd, mount.files, (0, 0), mount.secrets_dir)
        except OSError as exc:
            _close(root_fd)
            remove_host_mount(path)
            raise MountError(f"cannot prepare the secrets mount: {exc.strerror}") from None
        except BaseException:
            _close(root_fd)
            remove_host_mount(path)
            raise
        log.debug("mounted secrets tmpfs at %s", path)
        return cls(path, root_fd, placed, mount.secrets_dir)

    @property
    def secrets_path(self) -> Path:
        return self.path / SECRETS

    @property
    def configs_path(self) -> Path:
        """Where the configs tmpfs is (when there are configs): binds from it allow exec."""
        return self.path / CONFIGS

    @property
    def binds(self) -> list[tuple[Path, str]]:
        """``(host path, container path)`` for every absolute target, file by file: what
        is safe when nothing is known about the container's directories."""
        return self.binds_for(lambda directory: True)

    def binds_for(self, exists: Callable[[str], bool]) -> list[tuple[Path, str]]:
        """``(host path, container path)``: a directory ``exists`` says the container
        lacks is bound whole (see the module's docstring)."""
        return [(self.path / inner, target) for inner, target in self.placed.binds(exists)]

    def update(self, files: Sequence[SecretFile]) -> None:
        fill(self._root_fd, files, (0, 0), self.secrets_dir)

    def remove(self) -> None:
        if self._root_fd >= 0:
            _close(self._root_fd)
            self._root_fd = -1
            remove_host_mount(self.path)

    def keep(self) -> None:
        """Close secretd's handle but leave the tmpfs mounted, for a detached container
        that outlives the run (runtime/engines/common.py removes it with the container)."""
        if self._root_fd >= 0:
            os.close(self._root_fd)
            self._root_fd = -1


def _close(fd: int) -> None:
    if fd >= 0:
        os.close(fd)


def unmount(path: Path) -> None:
    """Detach what is mounted at ``path``, lazily (as ``umount -l``: a process still
    inside keeps its view, nobody new gets one); nothing mounted there (``EINVAL``, a
    failed create) or no ``path`` at all is fine.

    Raises:
        OSError: the kernel refuses (``EPERM``, ``EBUSY``).
    """
    try:
        _linux.umount(str(path))
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOENT):
            raise


def remove_host_mount(path: Path) -> None:
    """Unmount a host mount (its configs tmpfs first) and remove its directory: for a
    run's own mount on its way out and for one a container engine's reaper finds
    orphaned. One already gone is fine.

    Raises:
        MountError: it cannot be unmounted or removed (named, with the reason).
    """
    try:
        unmount(path / CONFIGS)
        unmount(path)
    except OSError as exc:
        raise MountError(f"cannot unmount {path}: {os.strerror(exc.errno or 0)}") from None
    try:
        path.rmdir()
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise MountError(f"cannot remove {path}: {exc.strerror}") from None
