"""Write and replace secret files inside a directory secretd owns, never half-written.

Every file is written to a fresh temporary name (``..tmp-*``: no target may start with
``..``) with its owner and mode set before it gets its real name through one
``rename(2)``, so a reader sees the old content or the new, never a mix or an empty file.
Paths are walked with ``O_NOFOLLOW`` from a directory file descriptor, so a symlink
planted in the tree cannot redirect a write.

Targets are regular files, not Kubernetes-style links into ``..data``: ``stat`` and
``ls -l`` inside the container then show each file's own mode and owner, as Docker Swarm
does. The files of one tree secret (a certificate and its key) are replaced together by
swapping their whole directory (see docs/architecture.md).
"""

from __future__ import annotations

import dataclasses
import errno
import os
import stat
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from .. import _linux
from ..spec import SecretFile

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
TMP_PREFIX = "..tmp-"


def open_dir(root_fd: int, parts: Sequence[str]) -> int:
    """Open (creating as needed, mode 0755) the directory ``parts`` below ``root_fd``,
    following no symlink.

    Raises:
        OSError: ``ELOOP``/``ENOTDIR`` when an element is a symlink or not a directory;
            its ``filename`` is the path up to that element.
    """
    fd = os.dup(root_fd)
    try:
        for index, part in enumerate(parts):
            try:
                os.mkdir(part, 0o755, dir_fd=fd)
            except FileExistsError:
                pass
            try:
                child = os.open(part, DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                exc.filename = "/".join(parts[: index + 1])
                raise
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_file(root_fd: int, file: SecretFile, default_owner: tuple[int, int]) -> None:
    """Create or atomically replace ``file.target`` (relative) below ``root_fd``."""
    *parents, name = file.target.split("/")
    dir_fd = open_dir(root_fd, parents)
    tmp = TMP_PREFIX + os.urandom(8).hex()
    try:
        fd = os.open(tmp, FILE_FLAGS, 0o600, dir_fd=dir_fd)
        try:
            view = memoryview(file.value)
            while view:
                view = view[os.write(fd, view) :]
            uid = default_owner[0] if file.uid is None else file.uid
            gid = default_owner[1] if file.gid is None else file.gid
            if (uid, gid) != (os.geteuid(), os.getegid()):
                os.fchown(fd, uid, gid)
            os.fchmod(fd, file.mode)
        finally:
            os.close(fd)
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except FileNotFoundError:
            pass
        raise
    finally:
        os.close(dir_fd)


def write_files(
    root_fd: int, files: Iterable[SecretFile], default_owner: tuple[int, int] = (0, 0)
) -> None:
    groups: dict[str, list[SecretFile]] = {}
    for file in files:
        if file.group is None:
            write_file(root_fd, file, default_owner)
        else:
            groups.setdefault(file.group, []).append(file)
    for group, members in groups.items():
        replace_dir(root_fd, group, members, default_owner)


def replace_dir(
    root_fd: int, directory: str, files: Sequence[SecretFile], default_owner: tuple[int, int]
) -> None:
    """Replace the whole directory ``directory`` with ``files`` in one step.

    The new set is written into a fresh ``..tmp-*`` directory beside it, which then trades
    places with the old one through ``renameat2(RENAME_EXCHANGE)``: the path names the
    old set or the new one, never a mix (a certificate with the other version's key).
    Files that left the set leave with the old directory.
    """
    *parents, name = directory.split("/")
    parent_fd = open_dir(root_fd, parents)
    staged = TMP_PREFIX + os.urandom(8).hex()
    leftover: str | None = staged
    try:
        os.mkdir(staged, 0o755, dir_fd=parent_fd)
        staged_fd = os.open(staged, DIR_FLAGS, dir_fd=parent_fd)
        try:
            for file in files:
                inner = file.target[len(directory) + 1 :]
                write_file(
                    staged_fd, dataclasses.replace(file, target=inner, group=None), default_owner
                )
        finally:
            os.close(staged_fd)
        try:
            os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
        except FileNotFoundError:
            os.rename(staged, name, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)
            leftover = None
        else:
            _linux.exchange(parent_fd, staged, name)  # ``staged`` now holds the old set
    finally:
        if leftover is not None:
            remove_tree(parent_fd, leftover)
        os.close(parent_fd)


def walk(dir_fd: int) -> Iterator[tuple[int, str, os.stat_result]]:
    """Every entry below ``dir_fd`` as ``(parent_fd, name, lstat)``, a directory's contents
    before the directory itself, following no symlink and entering no other mount.

    Iterative with two descriptors open at any depth: a tree thousands of levels deep
    (which a container can make) needs neither recursion nor a descriptor per level. It
    climbs back through ``..`` and checks that it arrives where it came from. The
    ``parent_fd`` yielded stays open until the next step, so the caller may delete the
    entry it was given.

    Raises:
        OSError: an entry cannot be read, or the tree was moved while it was walked.
    """
    fd = os.dup(dir_fd)
    try:
        top = os.fstat(fd)
        pending = os.listdir(fd)
        stack: list[tuple[list[str], str, os.stat_result]] = []
        here = top
        while True:
            if pending:
                name = pending.pop()
                try:
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    continue  # gone since it was listed: nothing to walk or remove
                if not stat.S_ISDIR(st.st_mode) or st.st_dev != top.st_dev:
                    yield fd, name, st
                    continue
                try:
                    child = os.open(name, DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    continue
                os.close(fd)
                fd = child
                _same(os.fstat(fd), st)
                stack.append((pending, name, here))
                pending, here = os.listdir(fd), st
            elif stack:
                done = here
                pending, name, here = stack.pop()
                parent = os.open("..", DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = parent
                _same(os.fstat(fd), here)
                yield fd, name, done
            else:
                return
    finally:
        os.close(fd)


def _same(found: os.stat_result, expected: os.stat_result) -> None:
    if (found.st_dev, found.st_ino) != (expected.st_dev, expected.st_ino):
        raise OSError(errno.ESTALE, "the directory tree changed while it was walked")


def remove_tree(parent_fd: int, name: str) -> None:
    """Delete ``name`` below ``parent_fd`` and everything in it (``rm -rf
    --one-file-system`` at any depth; a mount inside makes it fail with EBUSY). A
    symlink is removed, never followed; a missing ``name`` is not an error."""
    try:
        st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=parent_fd)
        return
    fd = os.open(name, DIR_FLAGS, dir_fd=parent_fd)
    try:
        for entry_parent, entry, entry_stat in walk(fd):
            _remove_entry(entry_parent, entry, entry_stat)
    finally:
        os.close(fd)
    _remove_entry(parent_fd, name, st)


def _remove_entry(parent_fd: int, name: str, st: os.stat_result) -> None:
    try:
        if stat.S_ISDIR(st.st_mode):
            os.rmdir(name, dir_fd=parent_fd)
        else:
            os.unlink(name, dir_fd=parent_fd)
    except FileNotFoundError:
        pass  # removed by someone else meanwhile: as good


def remove_path(path: Path | str, ignore_errors: bool = False) -> None:
    """``remove_tree`` for a path (its parent directories may be symlinks; it may not)."""
    path = Path(path)
    try:
        parent = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            remove_tree(parent, path.name)
        finally:
            os.close(parent)
    except OSError:
        if not ignore_errors:
            raise


def tree_size(dir_fd: int) -> int:
    """The bytes of the files below ``dir_fd`` (their sizes, as ``du --apparent-size``)."""
    return sum(st.st_size for _, _, st in walk(dir_fd) if not stat.S_ISDIR(st.st_mode))
