"""The FUSE secrets mount: the same tree as the tmpfs, served from secretd's memory.

``--mount-type fuse`` mounts a FUSE filesystem at ``<runtime_dir>/mounts/<id>`` (in a
0700 directory, like the host tmpfs) with the tmpfs's layout (``secrets/``,
``abs/<key>/``, ``configs/<key>/``), served by a thread of the process that resolved the
secrets (the daemon, or an in-process ``secretd run``): no value is ever written to any
filesystem, not even a tmpfs. Runtimes bind its parts exactly as they bind the tmpfs's.

- ``default_permissions``: the kernel checks each file's mode, uid and gid;
  ``allow_other`` (root only) lets the container's users in at all.
- Every open gets ``direct_io``: reads go to this process, so no value sits in the page
  cache, and a rotated value (``update``) is what the next open reads. An open file keeps
  the value it opened (a reader never sees a mix of two versions). A replaced set (a
  tree secret's directory) is first renamed aside through the kernel, so a directory
  handle opened before reads the old set whole, as the tmpfs's exchange gives.
- Regular files: ``stat`` gives the value's size; reads at any offset (``pread``).
- ``max_reads=N``: after N opens of a file, the next open fails with ``EACCES`` (the file
  is still listed, and ``stat`` still works); a rotation starts the count again.
- Each open is recorded in the access log (pid and command name of the opener).
- Root-level files other than the layout's (an engine's notes, ``owner.json``) may be
  created and written by the serving uid only; they hold no value.

Speed: every open is a few upcalls (open, read, read at EOF, release) into Python; each
is a dict lookup and one ``memmove``. Attributes and names are cached by the kernel for
``ATTR_TIMEOUT`` seconds, so a rotated file's ``stat`` size may lag by that long; its
content never does.

If the serving process dies, the kernel answers every access with ``ENOTCONN``
("Transport endpoint is not connected"); ``remove_dead_mounts`` unmounts what is left.
"""

from __future__ import annotations

import ctypes
import errno
import itertools
import logging
import os
import secrets
import shutil
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .. import accesslog, trust
from ..errors import MountError
from ..spec import DEFAULT_SECRETS_DIR, SecretFile, SecretMount
from .libfuse import FUSE_HINT, check, fuse_args, library, stat_type
from .tmpfs import CONFIGS, SECRETS, HostMount, Layout, layout, unmount

log = logging.getLogger(__name__)

ATTR_TIMEOUT = 1.0  # seconds the kernel keeps a file's attributes and names
NOTES_MODE = stat.S_IFREG | 0o600
DIR_MODE = stat.S_IFDIR | 0o755
_ACCESS_MODES = os.O_WRONLY | os.O_RDWR
# what would change the tree: answered EROFS, as a read-only mount does
READ_ONLY = ("mknod", "mkdir", "unlink", "rmdir", "symlink", "link", "chmod", "chown",
             "utimens")  # fmt: skip
RETIRED = b"/..set-"  # a replaced set's hidden name (no target starts with "..")
RETIRED_FOR = 60.0  # seconds a replaced set stays readable through an old handle


class _Node:
    """One file or directory: its ``stat`` as the kernel gets it, and its value."""

    __slots__ = ("stat", "value", "max_reads", "name", "note", "children")

    def __init__(
        self, ino: int, mode: int, uid: int, gid: int, value: bytes = b"", name: str = ""
    ) -> None:
        self.stat = self_stat = stat_type()()
        self_stat.st_ino = ino
        self_stat.st_mode = mode
        self_stat.st_nlink = 2 if stat.S_ISDIR(mode) else 1
        self_stat.st_uid = uid
        self_stat.st_gid = gid
        self_stat.st_size = len(value)
        self_stat.st_blksize = 4096
        self_stat.st_blocks = -(-len(value) // 512)
        self.value = value
        self.max_reads: int | None = None
        self.name = name  # the secret file's target, for the access log
        self.note = False  # a root-level file the serving process wrote (no secret)
        self.children: list[bytes] = []

    def with_children(self, children: list[bytes]) -> _Node:
        """A copy of this directory listing ``children``: a tree being built never changes
        a directory the current tree holds, so a reader sees one tree or the other."""
        copy = _Node.__new__(_Node)
        copy.stat, copy.value, copy.max_reads = self.stat, self.value, self.max_reads
        copy.name, copy.note, copy.children = self.name, self.note, children
        return copy


class SecretsFS:
    """The filesystem's contents and its operations (libfuse's high-level API: paths)."""

    def __init__(self, files: Sequence[SecretFile], owner: tuple[int, int], secrets_dir: str):
        self.owner = owner
        self.secrets_dir = secrets_dir
        self._inodes = itertools.count(2)
        self._ino: dict[bytes, int] = {}
        self._handles: dict[int, bytes] = {}
        self._next_handle = itertools.count(1)
        self._reads: dict[bytes, int] = {}  # opens so far of files with max_reads
        self._lock = threading.Lock()
        self._updating = threading.Lock()  # one update at a time
        self.root: Path | None = None  # where it is mounted, once it is
        self._serial = itertools.count(1)
        self._staged: tuple[bytes, bytes, dict[bytes, _Node]] | None = None
        self._retired: list[tuple[float, bytes]] = []  # (when, path) of replaced sets
        self.placed: Layout = layout(files, secrets_dir)
        self.nodes: dict[bytes, _Node] = self._build({}, files, self.placed, root=True)
        self._stat_size = ctypes.sizeof(stat_type())
        self._context = library().fuse_get_context

    # -- the tree ---------------------------------------------------------------------

    def _inode(self, path: bytes) -> int:
        ino = self._ino.get(path)
        if ino is None:
            ino = self._ino[path] = next(self._inodes)
        return ino

    def _dir(self, nodes: dict[bytes, _Node], path: bytes) -> _Node:
        """The directory ``path`` of the tree being built, made (with its parents) if new."""
        node = nodes.get(path)
        if node is None:
            ino = 1 if path == b"/" else self._inode(path)
            node = nodes[path] = _Node(ino, DIR_MODE, *self.owner)
            if path != b"/":
                self._link(nodes, path, add=True)
        return node

    def _link(self, nodes: dict[bytes, _Node], path: bytes, add: bool) -> None:
        """Add ``path``'s name to its directory's listing, or take it out, in a copy."""
        parent, _, name = path.rpartition(b"/")
        holder = self._dir(nodes, parent or b"/")
        children = [c for c in holder.children if c != name]
        nodes[parent or b"/"] = holder.with_children([*children, name] if add else children)

    def _build(
        self,
        nodes: dict[bytes, _Node],
        files: Sequence[SecretFile],
        placed: Layout,
        root: bool = False,
    ) -> dict[bytes, _Node]:
        """``nodes`` with ``files`` (placed by ``placed``, in the same order) added or
        replaced; a tree secret's group is replaced whole (files it lost disappear)."""
        nodes = dict(nodes)
        for group in {f.group for f in placed.files if f.group}:
            prefix = b"/" + group.encode()
            for path in [p for p in nodes if p == prefix or p.startswith(prefix + b"/")]:
                del nodes[path]
            self._link(nodes, prefix, add=False)
        if root:
            self._dir(nodes, b"/")
            self._dir(nodes, b"/" + SECRETS.encode())
            for directory in self.placed.dirs:
                self._dir(nodes, b"/" + directory.encode())
        for original, file in zip(files, placed.files, strict=True):
            path = b"/" + file.target.encode()
            uid = self.owner[0] if file.uid is None else file.uid
            gid = self.owner[1] if file.gid is None else file.gid
            node = _Node(self._inode(path), stat.S_IFREG | file.mode, uid, gid, file.value)
            node.max_reads = original.max_reads
            node.name = original.target
            if path not in nodes:
                self._link(nodes, path, add=True)
            nodes[path] = node
            self._reads.pop(path, None)
        return nodes

    def update(self, files: Sequence[SecretFile]) -> None:
        """Rotate: the next open of each file reads its new value (one assignment, so a
        lookup sees the whole old tree or the whole new one). A set (a tree secret's
        directory) is first moved aside through the kernel, as the tmpfs's exchange does,
        so a reader holding the old directory keeps reading the old set whole."""
        placed = layout(files, self.secrets_dir)
        with self._updating:
            self._forget_retired()
            by_group: dict[str | None, list[int]] = {}
            for index, file in enumerate(placed.files):
                by_group.setdefault(file.group, []).append(index)
            for group, indexes in by_group.items():
                part = [files[i] for i in indexes]
                layout_part = Layout(tuple(placed.files[i] for i in indexes))
                if group is None or not self._move_aside(group.encode(), part, layout_part):
                    with self._lock:
                        self.nodes = self._build(self.nodes, part, layout_part)

    def _move_aside(self, group: bytes, files: list[SecretFile], placed: Layout) -> bool:
        """Swap in a set's new files while the kernel renames its old directory to a
        hidden ``..set-N`` name (``rename`` below makes the swap when asked): a directory
        handle, a working directory, follows the old set there. False when there is no
        old set to move (or no mount yet)."""
        old = b"/" + group
        with self._lock:
            if self.root is None or old not in self.nodes:
                return False
            retired = old.rpartition(b"/")[0] + RETIRED + str(next(self._serial)).encode()
            stage = dict(self.nodes)
            for path in [p for p in stage if p == old or p.startswith(old + b"/")]:
                stage[retired + path[len(old) :]] = stage[path]
                if path in self._reads:  # max_reads= counts follow the old files
                    self._reads[retired + path[len(old) :]] = self._reads[path]
            self._staged = (old, retired, self._build(stage, files, placed))
        try:
            os.rename(self.root / old[1:].decode(), self.root / retired[1:].decode())
        except OSError as exc:  # the swap still happens, without the move
            log.debug("cannot move a replaced set aside: %s", exc.strerror)
        with self._lock:
            if self._staged is not None:  # the kernel never asked
                self.nodes, self._staged = self._staged[2], None
            self._retired.append((time.monotonic(), retired))
        return True

    def _forget_retired(self) -> None:
        """Drop the sets replaced more than ``RETIRED_FOR`` seconds ago."""
        cutoff = time.monotonic() - RETIRED_FOR
        gone = [path for when, path in self._retired if when < cutoff]
        if gone:
            with self._lock:
                self._retired = [(w, p) for w, p in self._retired if w >= cutoff]
                self.nodes = {
                    path: node
                    for path, node in self.nodes.items()
                    if not any(path == g or path.startswith(g + b"/") for g in gone)
                }
                self._reads = {p: n for p, n in self._reads.items() if p in self.nodes}

    # -- operations (each returns 0 or -errno) -----------------------------------------

    def getattr(self, path: bytes, buf: Any) -> int:
        node = self.nodes.get(path)
        if node is None:
            return -errno.ENOENT
        ctypes.memmove(buf, ctypes.addressof(node.stat), self._stat_size)
        return 0

    def readdir(self, path: bytes, buf: Any, filler: Any, offset: int, info: Any) -> int:
        node = self.nodes.get(path)
        if node is None:
            return -errno.ENOENT
        for name in (b".", b"..", *node.children):
            if filler(buf, name, None, 0):
                break
        return 0

    def open(self, path: bytes, info: Any) -> int:
        node = self.nodes.get(path)
        if node is None:
            return -errno.ENOENT
        fi = info.contents
        context = self._context().contents
        if node.note:  # a root-level file of the serving process
            if context.uid != os.geteuid():
                return -errno.EACCES
            fi.direct_io = 1
            return 0
        if fi.flags & _ACCESS_MODES:
            return -errno.EROFS
        if node.max_reads is not None:
            with self._lock:
                done = self._reads.get(path, 0)
                if done >= node.max_reads:
                    accesslog.record(
                        "fuse-open-refused", file=node.name, pid=context.pid, uid=context.uid,
                        comm=_comm(context.pid), reason="max_reads",
                    )  # fmt: skip
                    return -errno.EACCES
                self._reads[path] = done + 1
        handle = next(self._next_handle)
        self._handles[handle] = node.value
        fi.fh = handle
        fi.direct_io = 1
        accesslog.record(
            "fuse-open", file=node.name, pid=context.pid, uid=context.uid, comm=_comm(context.pid)
        )
        return 0

    def read(self, path: bytes, buf: Any, size: int, offset: int, info: Any) -> int:
        value = self._handles.get(info.contents.fh)
        if value is None:  # a note: read what it holds now
            node = self.nodes.get(path)
            if node is None:
                return -errno.EBADF
            value = node.value
        chunk = value[offset : offset + size]
        ctypes.memmove(buf, chunk, len(chunk))
        return len(chunk)

    def release(self, path: bytes, info: Any) -> int:
        self._handles.pop(info.contents.fh, None)
        return 0

    def rename(self, old: bytes, new: bytes) -> int:
        """Only the move ``_move_aside`` asked for: it swaps the trees as the kernel
        moves the directory. Any other rename is refused, as on a read-only mount."""
        with self._lock:
            if self._staged is None or self._staged[:2] != (old, new):
                return -errno.EROFS
            self.nodes, self._staged = self._staged[2], None
        return 0

    # -- notes: root-level files of the serving uid (an engine's owner.json) -----------

    def create(self, path: bytes, mode: int, info: Any) -> int:
        if path.count(b"/") != 1 or path in self.nodes:
            return -errno.EACCES
        if self._context().contents.uid != os.geteuid():
            return -errno.EACCES
        note = _Node(self._inode(path), NOTES_MODE, os.geteuid(), os.getegid())
        note.note = True
        with self._lock:
            nodes = dict(self.nodes)
            nodes[path] = note
            self._link(nodes, path, add=True)
            self.nodes = nodes
        info.contents.direct_io = 1
        return 0

    def write(self, path: bytes, buf: Any, size: int, offset: int, info: Any) -> int:
        node = self.nodes.get(path)
        if node is None or not node.note:
            return -errno.EROFS
        data = ctypes.string_at(buf, size)
        node.value = node.value[:offset].ljust(offset, b"\0") + data + node.value[offset + size :]
        node.stat.st_size = len(node.value)
        return size

    def truncate(self, path: bytes, length: int) -> int:
        node = self.nodes.get(path)
        if node is None or not node.note:
            return -errno.EROFS
        node.value = node.value[:length].ljust(length, b"\0")
        node.stat.st_size = length
        return 0

    def ftruncate(self, path: bytes, length: int, info: Any) -> int:
        return self.truncate(path, length)

    def operations(self) -> tuple[Any, list[Any]]:
        """The ``struct fuse_operations`` (and the callbacks it points to, kept alive)."""
        lib = library()
        ops = lib.py.fuse_operations()
        keep = []
        for name in ("getattr", "readdir", "open", "read", "release", "create", "write",
                     "truncate", "ftruncate", "rename", *READ_ONLY):  # fmt: skip
            method = _read_only if name in READ_ONLY else _guarded(getattr(self, name))
            callback = lib.prototypes[name](method)
            keep.append(callback)
            setattr(ops, name, callback)
        return ops, keep


def _read_only(*args: Any) -> int:
    return -errno.EROFS


def _guarded(method: Callable[..., int]) -> Callable[..., int]:
    """An exception must not cross into C: it becomes EIO (and a log line without values)."""

    def call(*args: Any) -> int:
        try:
            return method(*args)
        except Exception as exc:  # noqa: BLE001 - the C caller can only take an errno
            log.error("FUSE %s failed: %s", method.__name__, type(exc).__name__)
            return -errno.EIO

    return call


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm", "rb") as fh:
            return fh.read().decode(errors="replace").rstrip("\n")
    except OSError:
        return ""


class FuseMount(HostMount):
    """A FUSE mount under ``<runtime_dir>/mounts/<id>``, served by a thread of this
    process; everything a runtime uses of a ``HostMount`` (paths, binds) is the same."""

    def __init__(self, path: Path, fs: SecretsFS, secrets_dir: str = DEFAULT_SECRETS_DIR):
        super().__init__(path, -1, fs.placed, secrets_dir)
        self.fs = fs
        self._fuse: int | None = None
        self._chan: int | None = None
        self._thread: threading.Thread | None = None
        self._keep: list[Any] = []
        self.device = 0

    @classmethod
    def create(cls, runtime_dir: Path, mount: SecretMount) -> FuseMount:
        """Mount a FUSE filesystem holding ``mount``'s files and start serving it.

        Raises:
            MountError: FUSE is unavailable or the mount failed; nothing is left behind.
        """
        check()
        base = trust.runtime_dir(runtime_dir) / "mounts"
        base.mkdir(mode=0o700, exist_ok=True)
        path = base / secrets.token_hex(8)
        path.mkdir(mode=0o700)
        owner = (os.geteuid(), os.getegid())
        served = cls(path, SecretsFS(mount.files, owner, mount.secrets_dir), mount.secrets_dir)
        try:
            served._start(noexec=not any(f.config for f in mount.files))
        except BaseException:
            served.remove()
            raise
        log.debug("serving secrets over FUSE at %s", path)
        return served

    def _start(self, noexec: bool) -> None:
        lib = library()
        options = ["default_permissions", "nosuid", "nodev", "fsname=secretd", "subtype=secretd"]
        if os.geteuid() == 0:
            options.append("allow_other")
        if noexec:
            options.append("noexec")
        mount_args, keep_m = fuse_args("secretd", "-o", ",".join(options))
        timeouts = f"attr_timeout={ATTR_TIMEOUT},entry_timeout={ATTR_TIMEOUT}"
        lib_args, keep_l = fuse_args("secretd", "-o", f"use_ino,{timeouts},negative_timeout=0")
        ops, callbacks = self.fs.operations()
        self._keep = [mount_args, keep_m, lib_args, keep_l, ops, callbacks]
        chan = lib.fuse_mount(str(self.path).encode(), ctypes.byref(mount_args))
        if not chan:
            raise MountError(f"cannot mount the FUSE secrets filesystem at {self.path}", FUSE_HINT)
        self._chan = chan
        # libfuse 2 opens /dev/fuse without O_CLOEXEC: a command holding it could read
        # other processes' requests and answer them as the filesystem.
        os.set_inheritable(lib.fuse_chan_fd(chan), False)
        size = ctypes.sizeof(ops)
        fuse = lib.fuse_new(chan, ctypes.byref(lib_args), ctypes.byref(ops), size, None)
        if not fuse:
            raise MountError("cannot start the FUSE secrets filesystem", FUSE_HINT)
        self._fuse = fuse
        self._thread = threading.Thread(
            target=self._serve, args=(fuse,), daemon=True, name=f"secretd-fuse-{self.path.name}"
        )
        with _serving_lock:
            _serving.add(self)  # libfuse calls into self.fs until the loop ends
        self._thread.start()
        self.device = os.stat(self.path).st_dev
        self.fs.root = self.path

    def _serve(self, fuse: int) -> None:
        """The thread: serve until unmounted (``ENODEV`` ends the loop)."""
        try:
            library().fuse_loop(fuse)
        finally:
            with _serving_lock:
                _serving.discard(self)

    def update(self, files: Sequence[SecretFile]) -> None:
        self.fs.update(files)

    def keep(self) -> None:
        """A detached container keeps being served for as long as this process lives."""

    def remove(self) -> None:
        """Stop serving: unmount (lazily: a view inside a dying namespace may linger),
        end the loop, free libfuse's state, remove the directory. Idempotent."""
        if self._chan is not None:
            _unmount(self.path)
            if self._thread is not None:
                self._thread.join(5.0)
                if self._thread.is_alive():
                    _abort(self.device)
                    self._thread.join(5.0)
            lib = library()
            if self._thread is None or not self._thread.is_alive():
                lib.fuse_unmount(str(self.path).encode(), self._chan)
                if self._fuse is not None:
                    lib.fuse_destroy(self._fuse)
            self._chan = self._fuse = self._thread = None
        try:
            self.path.rmdir()
        except FileNotFoundError:
            pass


_serving: set[FuseMount] = set()  # mounts being served, kept alive (libfuse holds callbacks)
_serving_lock = threading.Lock()


def _unmount(path: Path) -> None:
    """Unmount lazily: umount2 as root, fusermount for a user's own mount."""
    if os.geteuid() == 0:
        try:
            unmount(path)
        except OSError as exc:
            raise MountError(f"cannot unmount {path}: {exc.strerror}") from None
        return
    binary = shutil.which("fusermount3") or shutil.which("fusermount") or "fusermount"
    subprocess.run([binary, "-u", "-z", "-q", str(path)], check=False, capture_output=True)


def _abort(device: int) -> None:
    """End a connection something still holds (root only): its server is going away."""
    try:
        with open(f"/sys/fs/fuse/connections/{os.minor(device)}/abort", "w") as fh:
            fh.write("1")
    except OSError:
        pass


def is_dead(path: Path) -> bool:
    """Whether ``path`` is a FUSE mount whose server is gone (``ENOTCONN``). Listing it,
    not ``stat``: the kernel answers ``stat`` from its attribute cache for a second."""
    try:
        os.listdir(path)
    except OSError as exc:
        return exc.errno == errno.ENOTCONN
    return False


def remove_dead_mounts(runtime_dir: Path) -> list[str]:
    """Unmount and remove the FUSE mounts a dead secretd left under ``mounts/``."""
    base = runtime_dir / "mounts"
    if not base.is_dir():
        return []
    reaped = []
    for entry in base.iterdir():
        if is_dead(entry):
            _unmount(entry)
            try:
                entry.rmdir()
            except OSError as exc:
                log.warning("cannot remove %s: %s", entry, exc.strerror)
                continue
            reaped.append(entry.name)
    return reaped


__all__ = ["CONFIGS", "FuseMount", "SecretsFS", "check", "is_dead", "remove_dead_mounts"]
