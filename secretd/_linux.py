"""The few Linux system calls the standard library lacks, through ctypes.

Spawning ``mount``/``unshare`` processes would cost milliseconds per run; these are
microseconds and report errno precisely.
"""

from __future__ import annotations

import ctypes
import os

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MNT_DETACH = 0x2
M_MMAP_THRESHOLD = -3  # glibc's mallopt parameters
M_ARENA_MAX = -8

CLONE_NEWNS = 0x00020000
CLONE_PARENT = 0x00008000
CLONE_NEWPID = 0x20000000
CLONE_NEWUSER = 0x10000000
SYS_CLONE3 = 435  # the same on every architecture, unlike clone(2)'s argument order

RENAME_EXCHANGE = 0x2
MCL_CURRENT, MCL_FUTURE, MCL_ONFAULT = 1, 2, 4

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
TMPFS_MAGIC = 0x01021994

# The mount API of Linux 5.2 (fsopen & co.): a filesystem can be set up and filled as a
# detached mount, reachable only through a file descriptor, before it is attached anywhere.
# Their syscall numbers are the same on every architecture.
SYS_OPEN_TREE, SYS_MOVE_MOUNT, SYS_FSOPEN, SYS_FSCONFIG, SYS_FSMOUNT = 428, 429, 430, 431, 432
FSOPEN_CLOEXEC = 0x1
FSCONFIG_SET_FLAG = 0
FSCONFIG_SET_STRING = 1
FSCONFIG_CMD_CREATE = 6
FSMOUNT_CLOEXEC = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
OPEN_TREE_CLONE = 0x1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
MOVE_MOUNT_F_EMPTY_PATH = 0x4
AT_FDCWD = -100

# The interpreter links libc already: no find_library (which runs ldconfig, ~10 ms).
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.syscall.restype = ctypes.c_long
_libc.prctl.argtypes = [
    ctypes.c_int,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
]


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _b(value: str | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def mount(
    source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None
) -> None:
    _check(_libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)), f"mount {target}")


def umount(target: str, flags: int = MNT_DETACH) -> None:
    _check(_libc.umount2(_b(target), flags), f"umount {target}")


def exchange(dir_fd: int, first: str, second: str) -> None:
    """Swap two names in one directory atomically (``renameat2(RENAME_EXCHANGE)``)."""
    result = _libc.renameat2(
        dir_fd, os.fsencode(first), dir_fd, os.fsencode(second), RENAME_EXCHANGE
    )
    _check(result, f"exchange {first} {second}")


def mlockall(flags: int) -> None:
    _check(_libc.mlockall(flags), "mlockall")


def mallopt(param: int, value: int) -> None:
    """Tune glibc's allocator (``M_MMAP_THRESHOLD``, ``M_ARENA_MAX``); 0 means refused."""
    if _libc.mallopt(param, value) == 0:
        raise OSError(0, f"mallopt({param}, {value}) refused")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def prctl(option: int, arg: int) -> None:
    _check(_libc.prctl(option, arg, 0, 0, 0), "prctl")


def fs_type(target: str | int) -> int:
    """The filesystem type (``f_type`` of ``statfs(2)``/``fstatfs(2)``, e.g.
    ``TMPFS_MAGIC``) of a path or an open descriptor; ``os.statvfs`` does not report it."""
    buffer = ctypes.create_string_buffer(256)  # struct statfs is 120 bytes on 64-bit Linux
    if isinstance(target, int):
        _check(_libc.fstatfs(target, buffer), f"fstatfs {target}")
    else:
        _check(_libc.statfs(_b(target), buffer), f"statfs {target}")
    return ctypes.c_long.from_buffer(buffer).value


class _CloneArgs(ctypes.Structure):
    """``struct clone_args`` as of Linux 5.3 (CLONE_ARGS_SIZE_VER0)."""

    _fields_ = [
        (name, ctypes.c_uint64)
        for name in (
            "flags", "pidfd", "child_tid", "parent_tid", "exit_signal", "stack", "stack_size",
            "tls",
        )
    ]  # fmt: skip


def clone_sibling_init() -> int:
    """Fork a process that is the first (PID 1) of a new PID namespace and a child of our
    own parent (``clone3(CLONE_PARENT | CLONE_NEWPID)``), so the caller can leave at once.

    Returns 0 in the new process and its pid (in our namespace) in the caller, like fork.
    The new process starts as a copy of a single-threaded caller without the C library's
    fork handlers: it may make system calls and exec, nothing more.
    """
    args = _CloneArgs(flags=CLONE_PARENT | CLONE_NEWPID)
    return _syscall(SYS_CLONE3, "clone3", ctypes.byref(args), ctypes.sizeof(args))


def _syscall(number: int, what: str, *args: object) -> int:
    result = int(_libc.syscall(number, *args))
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def fsopen(fstype: str) -> int:
    return _syscall(SYS_FSOPEN, "fsopen", os.fsencode(fstype), FSOPEN_CLOEXEC)


def fsconfig(fd: int, key: str, value: str | None = None) -> None:
    """Set one option; ``value`` of ``None`` sets a flag such as ``noswap``."""
    if value is None:
        _syscall(SYS_FSCONFIG, f"fsconfig {key}", fd, FSCONFIG_SET_FLAG, key.encode(), None, 0)
    else:
        cmd = FSCONFIG_SET_STRING
        _syscall(SYS_FSCONFIG, f"fsconfig {key}", fd, cmd, key.encode(), value.encode(), 0)


def fscreate(fd: int) -> None:
    _syscall(SYS_FSCONFIG, "fsconfig create", fd, FSCONFIG_CMD_CREATE, None, None, 0)


def fsmount(fd: int, attributes: int) -> int:
    return _syscall(SYS_FSMOUNT, "fsmount", fd, FSMOUNT_CLOEXEC, attributes)


def clone_tree(dir_fd: int, path: str) -> int:
    """A detached bind mount of ``path`` below ``dir_fd`` (``open_tree(OPEN_TREE_CLONE)``)."""
    flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC
    return _syscall(SYS_OPEN_TREE, f"open_tree {path}", dir_fd, os.fsencode(path), flags)


def attach(mount_fd: int, target: str) -> None:
    """Attach a detached mount at ``target`` (``move_mount``)."""
    flags = MOVE_MOUNT_F_EMPTY_PATH
    _syscall(
        SYS_MOVE_MOUNT, f"move_mount {target}", mount_fd, b"", AT_FDCWD, os.fsencode(target), flags
    )
