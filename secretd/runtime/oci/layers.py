"""Unpack image layers into a cache, one directory per layer, ready for overlayfs.

A layer is a tar from someone else, so it is treated as hostile: it is checked against
its digest before anything is unpacked, then unpacked member by member into a fresh
temporary directory that is renamed into place only when the whole layer succeeded.
Member paths are walked from a directory descriptor with ``O_NOFOLLOW``; a member that is
absolute, climbs with ``..``, passes through a symlink, is a device node, or hard-links
outside the layer stops the unpack, and the temporary directory is deleted. Nothing is
ever written outside the cache. What one layer, and all the layers of one image, may
write is capped (``Budget``): a small compressed layer cannot fill the disk.

Whiteouts are converted to overlayfs' own form, so stacking the layers as lower
directories gives the image's file system: ``.wh.NAME`` becomes a 0/0 character device
``NAME``; ``.wh..wh..opq`` marks its directory opaque (``trusted.overlay.opaque=y``).
A whiteout hides one name in its own directory, never ``.`` or ``..``; other
``.wh..wh.`` names are aufs bookkeeping, skipped as Docker skips them.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from ...mount.atomic import DIR_FLAGS, open_dir, remove_path, remove_tree
from .base import ImageError

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
AUFS_META = ".wh..wh."
NAME_MAX = 255
PATH_MAX = 4096
GZIP_MAGIC = b"\x1f\x8b"
OTHER_COMPRESSIONS = {b"\x28\xb5\x2f\xfd": "zstd", b"\xfd7zXZ\x00": "xz", b"BZh": "bzip2"}
DAMAGED = "the image file is damaged or was altered: load it again from a good copy"
LIMIT_HINT = ("raise [providers.oci] max_layer_size/max_image_size "
              "(SECRETD_OCI_MAX_LAYER_SIZE/_IMAGE_SIZE) if you trust it")
# Failures of the cache's own file system; anything else a member causes is its fault.
HOST_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EACCES})
FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
CHUNK = 1 << 20
TAR_END = 2 * tarfile.BLOCKSIZE
TMP_PREFIX = ".tmp-"


@dataclass(frozen=True)
class Blob:
    """A layer as stored: how to open it, what it must hash to, how it is compressed.

    ``diff_id`` is the digest of the uncompressed tar (the image config's
    ``rootfs.diff_ids``); it names the layer in the cache whatever its compression.
    """

    open: Callable[[], IO[bytes]]
    digest: str | None  # None: only the uncompressed content is named (docker save)
    diff_id: str
    size: int | None = None

    @property
    def short(self) -> str:
        return (self.digest or self.diff_id)[:19]


@dataclass
class Budget:
    """What the layers of one image may still write into the cache, and the image's name
    for error messages. Layers already in the cache cost nothing."""

    image: str
    layer_limit: int
    image_limit: int
    spent: int = 0

    def limit(self) -> int:
        return min(self.layer_limit, self.image_limit - self.spent)

    def exceeded(self, layer: str) -> ImageError:
        if self.layer_limit <= self.image_limit - self.spent:
            what = f"layer {layer} unpacks to more than {self.layer_limit} bytes"
        else:
            what = f"its layers unpack to more than {self.image_limit} bytes"
        return ImageError(f"image {self.image}: {what}", LIMIT_HINT)


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _Hashing:
    """Reads through to ``raw`` while hashing, and keeps the last chunks read so the tar's
    end-of-archive blocks can be checked after tarfile has stopped. It also keeps the
    layer's cost: the bytes read, or the bytes its files hold if that is more (a sparse
    member of a few blocks may claim terabytes)."""

    def __init__(self, raw: _Readable, limit: int, too_big: Callable[[], ImageError]) -> None:
        self.raw = raw
        self.hash = hashlib.sha256()
        self.length = 0
        self.stored = 0
        self.recent: list[tuple[int, bytes]] = []
        self.limit, self.too_big = limit, too_big

    def cost(self) -> int:
        return max(self.length, self.stored)

    def charge(self, size: int) -> None:
        """Count a file of ``size`` bytes about to be written."""
        self.stored += size
        if self.stored > self.limit:
            raise self.too_big()

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(min(size, CHUNK) if size >= 0 else CHUNK)
        self.hash.update(data)
        self.recent = [*self.recent[-2:], (self.length, data)]
        self.length += len(data)
        if self.length > self.limit:
            raise self.too_big()
        return data

    def drain(self) -> None:
        while self.read(CHUNK):
            pass

    def zeros_at(self, offset: int, count: int) -> bool:
        window = b"".join(data for start, data in self.recent if start + len(data) > offset)
        first = next((start for start, data in self.recent if start + len(data) > offset), 0)
        piece = window[offset - first : offset - first + count]
        return len(piece) == count and not piece.strip(b"\0")


def digest_of(opener: Callable[[], IO[bytes]]) -> tuple[str, int]:
    """``("sha256:<hex>", size)`` of a blob, read in chunks."""
    digest, size = hashlib.sha256(), 0
    with opener() as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return "sha256:" + digest.hexdigest(), size


def unpack(blob: Blob, cache: Path, budget: Budget) -> Path:
    """The unpacked directory of ``blob`` in ``cache``, unpacking it on first use.

    Raises:
        ImageError: the blob does not match its digest or size, is damaged, too big for
            ``budget``, or holds a member that would land outside the layer; nothing is
            left behind.
    """
    final = cache / blob.diff_id.partition(":")[2]
    if final.is_dir():
        return final
    where = f"image {budget.image}: layer {blob.short}"
    with blob.open() as raw:
        head = raw.read(6)
    for magic, name in OTHER_COMPRESSIONS.items():
        if head.startswith(magic):
            raise ImageError(f"{where} is compressed with {name}",
                             "secretd reads plain and gzip layers: recompress it with gzip")
    # A docker save archive names only the uncompressed tar: a gzip layer in it is
    # checked against its diff_id while it is unpacked, as docker load does.
    expected = blob.digest or (None if head.startswith(GZIP_MAGIC) else blob.diff_id)
    if expected is not None:
        digest, size = digest_of(blob.open)
        if digest != expected or (blob.size is not None and size != blob.size):
            raise ImageError(
                f"{where} does not match its digest or size (read {digest[:19]}, {size} bytes)",
                DAMAGED,
            )
    cache.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = cache / (TMP_PREFIX + os.urandom(8).hex())
    tmp.mkdir(mode=0o755)
    try:
        budget.spent += _extract(blob, tmp, where, head.startswith(GZIP_MAGIC), budget)
        os.rename(tmp, final)
    except OSError as exc:
        remove_path(tmp, ignore_errors=True)
        if exc.errno in (errno.EEXIST, errno.ENOTEMPTY) and final.is_dir():
            return final  # unpacked concurrently by another run: theirs is as good
        raise ImageError(
            f"cannot unpack {where}: {exc.strerror or exc}",
            f"check free space and permissions under {cache}",
        ) from None
    except BaseException:
        remove_path(tmp, ignore_errors=True)
        raise
    return final


def _extract(blob: Blob, dest: Path, where: str, gzipped: bool, budget: Budget) -> int:
    """Unpack ``blob`` into ``dest``; returns its cost against the budget (``_Hashing``)."""
    import gzip
    import zlib

    try:
        with blob.open() as raw:
            stream: _Readable = gzip.GzipFile(fileobj=raw) if gzipped else raw
            reader = _Hashing(stream, budget.limit(), lambda: budget.exceeded(blob.short))
            with tarfile.open(fileobj=reader, mode="r|") as tar:  # type: ignore[call-overload]
                root = os.open(dest, DIR_FLAGS)
                try:
                    for member in tar:
                        _Member(root, member, where).apply(tar, reader.charge)
                finally:
                    os.close(root)
                end = tar.offset
            reader.drain()
    except (tarfile.TarError, EOFError, gzip.BadGzipFile, zlib.error,
            ValueError, OverflowError) as exc:
        raise ImageError(f"{where} is not a complete tar ({exc})", DAMAGED) from None
    if not reader.zeros_at(end, TAR_END):
        raise ImageError(f"{where} is truncated (no end-of-archive marker)", DAMAGED)
    if "sha256:" + reader.hash.hexdigest() != blob.diff_id:
        raise ImageError(
            f"{where} does not match the image config's diff_id {blob.diff_id[:19]}", DAMAGED
        )
    return reader.cost()


def _clean(name: str, where: str, what: str) -> list[str]:
    """The components of a member path, refusing anything that leaves the layer or that
    no file system could hold."""

    def refuse(why: str) -> ImageError:
        return ImageError(f"{where}: {what} {name[:200]!r} {why}",
                          "refusing to unpack an image that writes outside its own root")

    if name.startswith("/"):
        raise refuse("is an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise refuse("climbs out with '..'")
    if "\0" in name:
        raise refuse("holds a NUL byte")
    if len(os.fsencode(name)) >= PATH_MAX or any(
        len(os.fsencode(p)) > NAME_MAX for p in parts
    ):
        raise refuse(f"is longer than a path ({PATH_MAX}) or a name ({NAME_MAX}) may be")
    return parts


class _Member:
    """One tar member, applied below the layer's root directory descriptor."""

    def __init__(self, root: int, member: tarfile.TarInfo, where: str) -> None:
        self.root, self.member, self.where = root, member, where
        self.parts = _clean(member.name, where, "member")

    def refuse(self, why: str) -> ImageError:
        return ImageError(
            f"{self.where}: member {self.member.name[:200]!r} {why}",
            "refusing to unpack this image",
        )

    def apply(self, tar: tarfile.TarFile, charge: Callable[[int], None]) -> None:
        if not self.parts:
            return  # the layer's root itself: the cache directory stands for it
        member, name = self.member, self.parts[-1]
        if member.ischr() or member.isblk():
            raise self.refuse("is a device node; images may not carry device nodes")
        if name != OPAQUE and any(p.startswith(AUFS_META) for p in self.parts):
            return  # aufs' own hard-link and orphan bookkeeping: Docker skips it too
        hidden = name[len(WHITEOUT) :] if name.startswith(WHITEOUT) else None
        if hidden in ("", ".", ".."):
            raise self.refuse(f"whites out {hidden!r}, which is not a name in its directory")
        parent = self._parent(self.parts[:-1])
        try:
            self._apply(tar, parent, name, hidden, charge)
        except (ValueError, OverflowError) as exc:
            raise self.refuse(f"has a field out of range ({exc})") from None
        except OSError as exc:
            if exc.errno in HOST_ERRNOS:
                raise
            raise self.refuse(f"cannot be unpacked ({exc.strerror or exc})") from None
        finally:
            os.close(parent)

    def _apply(self, tar: tarfile.TarFile, parent: int, name: str, hidden: str | None,
               charge: Callable[[int], None]) -> None:
        member = self.member
        if name == OPAQUE:
            os.setxattr(parent, "trusted.overlay.opaque", b"y")
        elif hidden is not None:
            _remove(parent, hidden)
            os.mknod(hidden, stat.S_IFCHR, os.makedev(0, 0), dir_fd=parent)
        elif member.isdir():
            self._directory(parent, name)
        elif member.isreg():
            charge(member.size)
            self._file(parent, name, tar)
        elif member.issym():
            self._symlink(parent, name)
        elif member.islnk():
            self._hardlink(parent, name)
        elif member.isfifo():
            _remove(parent, name)
            os.mkfifo(name, 0o600, dir_fd=parent)
            self._own(parent, name)
        else:
            raise self.refuse(f"has an unsupported type {member.type!r}")

    def _parent(self, parts: list[str]) -> int:
        """Open (creating, 0755) the member's parent without following any symlink."""
        try:
            return open_dir(self.root, parts)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise self.refuse(
                    f"goes through {exc.filename!r}, which is not a directory"
                ) from None
            raise

    def _own(self, parent: int, name: str) -> None:
        os.chown(name, self.member.uid, self.member.gid, dir_fd=parent, follow_symlinks=False)
        if not self.member.issym():
            os.chmod(name, self.member.mode & 0o7777, dir_fd=parent)
        mtime = int(self.member.mtime)
        os.utime(name, (mtime, mtime), dir_fd=parent, follow_symlinks=False)

    def _directory(self, parent: int, name: str) -> None:
        try:
            if not stat.S_ISDIR(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode):
                _remove(parent, name)
                os.mkdir(name, 0o755, dir_fd=parent)
        except FileNotFoundError:
            os.mkdir(name, 0o755, dir_fd=parent)
        self._own(parent, name)

    def _file(self, parent: int, name: str, tar: tarfile.TarFile) -> None:
        _remove(parent, name)
        source = tar.extractfile(self.member)
        assert source is not None  # a regular member always has data
        fd = os.open(name, FILE_FLAGS, 0o600, dir_fd=parent)
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(source, out, CHUNK)
        self._own(parent, name)

    def _symlink(self, parent: int, name: str) -> None:
        target = self.member.linkname
        if not target or "\0" in target or len(os.fsencode(target)) >= PATH_MAX:
            raise self.refuse(f"is a symlink to {target[:200]!r}, which no path can be")
        if not target.startswith("/"):
            depth = len(self.parts) - 1
            for part in target.split("/"):
                depth += -1 if part == ".." else 0 if part in ("", ".") else 1
                if depth < 0:
                    raise self.refuse(f"is a symlink to {target!r}, outside the image")
        _remove(parent, name)
        os.symlink(target, name, dir_fd=parent)
        self._own(parent, name)

    def _hardlink(self, parent: int, name: str) -> None:
        parts = _clean(self.member.linkname, self.where, "hard link target")
        if not parts:
            raise self.refuse("is a hard link to the layer's root")
        source_dir = self._existing_parent(parts[:-1])
        try:
            _remove(parent, name)
            try:
                os.link(
                    parts[-1], name, src_dir_fd=source_dir, dst_dir_fd=parent, follow_symlinks=False
                )
            except FileNotFoundError:
                raise self.refuse(
                    f"hard-links to {self.member.linkname!r}, which is not in this layer"
                ) from None
        finally:
            os.close(source_dir)

    def _existing_parent(self, parts: list[str]) -> int:
        fd = os.dup(self.root)
        try:
            for part in parts:
                child = os.open(part, DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = child
        except OSError:
            os.close(fd)
            raise self.refuse(
                f"hard-links to {self.member.linkname!r}, which is not in this layer"
            ) from None
        return fd


def _remove(parent: int, name: str) -> None:
    """Make room for a member that replaces an earlier one of the same name."""
    try:
        mode = os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISDIR(mode):
        remove_tree(parent, name)
    else:
        os.unlink(name, dir_fd=parent)


def reap_temporary(cache: Path) -> None:
    """Delete half-unpacked layers an interrupted secretd left in the cache."""
    if cache.is_dir():
        for entry in cache.iterdir():
            if entry.name.startswith(TMP_PREFIX):
                remove_path(entry, ignore_errors=True)
