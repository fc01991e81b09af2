"""``file:PATH``: a secret already on disk (a mounted volume, a CI file variable)."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from .. import safeopen
from ..config import Config
from ..errors import AccessDenied, ProviderError, SecretNotFound
from ..spec import Secret, SecretRef
from . import BaseProvider
from ._common import content_version

# What tells a file's content apart without reading it: the file, its size, and the
# times a write (mtime) or any change, even a restored mtime (ctime), sets.
Stamp = tuple[int, int, int, int, int]
# A stamp this recent may not tell a later write apart (the kernel's file times move in
# clock ticks): such a file is read and hashed again at the next poll, as git does.
RACY_NS = 2_000_000_000
KEPT = 4096  # stamps kept per provider, at most


@contextlib.contextmanager
def _reading(path: Path, name: str) -> Iterator[None]:
    """The errors of reading ``path``, saying which secret wanted it."""
    try:
        yield
    except FileNotFoundError:
        raise SecretNotFound(f"secret {name!r}: file {str(path)!r} does not exist") from None
    except PermissionError as exc:
        raise AccessDenied(f"secret {name!r}: cannot read {str(path)!r}: {exc.strerror}") from None
    except OSError as exc:
        raise ProviderError(f"secret {name!r}: cannot read {str(path)!r}: {exc.strerror}") from None


def read_file(path: Path, name: str) -> bytes:
    """Read a file a reference names (a regular file, smaller than 500 KiB; in the daemon,
    by ``safeopen``'s rules for its caller), with errors that say which secret wanted it."""
    with _reading(path, name):
        return safeopen.read_file(path)


class FileProvider(BaseProvider):
    """Reads files; ``version()``, polled by rotation, reads and hashes a file only when
    its stamp (inode, size, mtime, ctime) changed since the last poll: polling a file
    costs an open and an ``fstat``, whatever its size."""

    scheme = "file"

    def __init__(self) -> None:
        # (whom it was read for, path) -> (stamp, version); versions only, never a value
        self._versions: dict[tuple[safeopen.Caller | None, str], tuple[Stamp, str]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, config: Config) -> FileProvider:
        return cls()

    def get(self, ref: SecretRef) -> Secret:
        value = read_file(Path(ref.locator), ref.name)
        return Secret(name=ref.name, version=content_version(value), value=value)

    def version(self, ref: SecretRef) -> str:
        path = Path(ref.locator)
        key = (safeopen.current_caller(), os.path.abspath(path))
        with _reading(path, ref.name):
            fd = safeopen.open_file(path)  # the same rules as a read, every time
            try:
                st = os.fstat(fd)
                stamp = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
                with self._lock:
                    known = self._versions.get(key)
                if known is not None and known[0] == stamp:
                    return known[1]
                version = content_version(safeopen.read_fd(fd))
            finally:
                os.close(fd)
        if time.time_ns() - max(stamp[3], stamp[4]) > RACY_NS:
            with self._lock:
                if len(self._versions) >= KEPT:
                    self._versions.clear()
                self._versions[key] = (stamp, version)
        return version
