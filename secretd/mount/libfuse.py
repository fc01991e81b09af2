"""libfuse 2 through ctypes (fusepy's types): loaded once, on first use, and checked
before anything is started, so that a host without FUSE fails with the fix.

``mount/fuse.py`` serves the filesystem; this module only finds and binds the library:
the calls secretd makes itself (``fuse_mount``, ``fuse_new``, ``fuse_loop``...), so that
the mount is made, served by a thread and unmounted under secretd's control, each bound
at its FUSE_2.6 version (the library also exports older ones under each name).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import threading
from typing import Any

from ..errors import MountError

FUSE_HINT = "install FUSE: apt-get install fuse3 libfuse2 (and load the fuse module)"


class Args(ctypes.Structure):
    """libfuse's ``struct fuse_args``: the ``-o`` options ``fuse_mount`` and ``fuse_new``
    take."""

    _fields_ = [
        ("argc", ctypes.c_int),
        ("argv", ctypes.POINTER(ctypes.c_char_p)),
        ("allocated", ctypes.c_int),
    ]


def fuse_args(*words: str) -> tuple[Args, Any]:
    """A ``struct fuse_args`` (and the array it points into, to keep it alive)."""
    argv = (ctypes.c_char_p * len(words))(*(w.encode() for w in words))
    return Args(len(words), argv, 0), argv


class Library:
    """libfuse 2 through fusepy's ctypes types; loaded on first use.

    Raises:
        MountError: ``/dev/fuse`` or libfuse is missing (with the fix).
    """

    fuse_mount: Any
    fuse_new: Any
    fuse_loop: Any
    fuse_unmount: Any
    fuse_chan_fd: Any
    fuse_destroy: Any
    fuse_get_context: Any

    def __init__(self) -> None:
        if not os.path.exists("/dev/fuse"):
            raise MountError("cannot use --mount-type fuse: /dev/fuse is missing", FUSE_HINT)
        try:
            import fuse as fusepy
        except (ImportError, OSError):  # fusepy raises OSError without libfuse
            raise MountError(
                "cannot use --mount-type fuse: libfuse 2 or fusepy is not installed",
                f"{FUSE_HINT}; pip install 'secretd[fuse]'",
            ) from None
        self.py = fusepy
        lib = ctypes.CDLL(fusepy._libfuse_path)
        libc = ctypes.CDLL(None)
        libc.dlvsym.restype = ctypes.c_void_p
        libc.dlvsym.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
        void = ctypes.c_void_p
        for name, restype, argtypes in (
            ("fuse_mount", void, [ctypes.c_char_p, ctypes.POINTER(Args)]),
            ("fuse_new", void, [void, ctypes.POINTER(Args), void, ctypes.c_size_t, void]),
            ("fuse_loop", ctypes.c_int, [void]),
            ("fuse_unmount", None, [ctypes.c_char_p, void]),
            ("fuse_chan_fd", ctypes.c_int, [void]),
            ("fuse_destroy", None, [void]),
            ("fuse_get_context", ctypes.POINTER(fusepy.fuse_context), []),
        ):
            # The FUSE_2.6 versions: the library also exports older ones under each name.
            address = libc.dlvsym(lib._handle, name.encode(), b"FUSE_2.6")
            if not address:
                address = ctypes.cast(getattr(lib, name), ctypes.c_void_p).value
            function = ctypes.CFUNCTYPE(restype, *argtypes)(address)
            setattr(self, name, function)
        self.prototypes = {field[0]: field[1] for field in fusepy.fuse_operations._fields_}


_lib: Library | None = None
_lib_lock = threading.Lock()


def library() -> Library:
    """libfuse, loaded once; ``check`` calls it so a missing one fails before anything runs.

    Raises:
        MountError: FUSE is unavailable.
    """
    global _lib
    with _lib_lock:
        if _lib is None:
            _lib = Library()
        return _lib


def check() -> None:
    """Fail now, with the fix, when FUSE cannot be used (before anything is started).

    Raises:
        MountError: ``/dev/fuse``, libfuse or fusepy is missing.
    """
    library()
    if os.geteuid() == 0:
        return
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        raise MountError(
            f"cannot use --mount-type fuse: /dev/fuse is not open to uid {os.getuid()}",
            "make it so (chmod 0666 /dev/fuse, Debian's default) or run through the daemon",
        )
    if not shutil.which("fusermount3") and not shutil.which("fusermount"):
        raise MountError("cannot use --mount-type fuse: fusermount is not installed", FUSE_HINT)


def stat_type() -> Any:
    """fusepy's ``struct stat``, the layout the kernel reads a file's attributes in."""
    return library().py.c_stat
