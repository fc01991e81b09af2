"""The access log: one JSON line per event of who got which secret, never a value.

Lines say which secret (name, version) went to which run or container, for which uid,
each rotation and action, and each open of a FUSE file (pid, command name). The file is
``<state_dir>/access.log``, mode 0600, opened with ``O_NOFOLLOW`` (a link planted there
is refused, not followed), appended to with one ``write(2)`` per line, and rotated by
size: ``access.log.1`` ... ``access.log.<keep>``, oldest dropped.

Every process that runs commands (the daemon, an in-process ``secretd run``) names the
log of its own state directory once (``configure``) and opens it at its first event, so
a run that fails before it starts leaves no file behind; ``record`` is then a formatted
line and one write under a lock, cheap enough for the FUSE open path. Before
``configure`` (or after ``configure(None)``) ``record`` does nothing.

Fields must be JSON scalars or lists of them: ``bytes`` (a value, by mistake) raise
``TypeError`` rather than being written.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import SecretdError, UsageError

if TYPE_CHECKING:
    from .config import Config

log = logging.getLogger(__name__)

FILE = "access.log"
MAX_BYTES = 4 * 1024 * 1024
KEEP = 5
_OPEN_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class AccessLog:
    """One access log file, shared by the threads of a process (and, through ``flock``,
    by other processes writing the same file)."""

    def __init__(self, path: Path, max_bytes: int = MAX_BYTES, keep: int = KEEP) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.keep = keep
        self._lock = threading.Lock()
        self._fd = -1  # opened at the first event

    def _open(self) -> int:
        """Open (creating it 0600) the log file, refusing a link or a non-regular file.

        Raises:
            UsageError: the file cannot be opened, or is a link or not a regular file.
        """
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, _OPEN_FLAGS, 0o600)
        except OSError as exc:
            reason = "it is a symbolic link" if exc.errno == errno.ELOOP else exc.strerror
            raise UsageError(
                f"cannot open the access log {self.path}: {reason}",
                "remove it, or set state_dir to a directory of your own",
            ) from None
        info = os.fstat(fd)
        if not (info.st_mode & 0o170000 == 0o100000) or info.st_uid != os.geteuid():
            os.close(fd)
            raise UsageError(
                f"the access log {self.path} is not a regular file of yours",
                "remove it, or set state_dir to a directory of your own",
            )
        if info.st_mode & 0o077:
            os.fchmod(fd, 0o600)
        return fd

    def record(self, event: str, fields: dict[str, Any]) -> None:
        """Append one line: ``{"time": ..., "event": ..., **fields}``."""
        now = time.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
        line = _encode({"time": f"{stamp}.{int(now % 1 * 1000):03d}Z", "event": event, **fields})
        data = (line + "\n").encode()
        with self._lock:
            if self._fd < 0:
                self._fd = self._open()
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                self._reopen_if_moved()
                os.write(self._fd, data)
                if os.fstat(self._fd).st_size >= self.max_bytes:
                    self._rotate()
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _rotate(self) -> None:
        """Shift ``access.log.N`` up by one (dropping the last) and start a new file.
        Runs under the file's lock; another process notices its file was moved on its
        next write (``_reopen_if_moved``)."""
        name = str(self.path)
        for index in range(self.keep - 1, 0, -1):
            try:
                os.rename(f"{name}.{index}", f"{name}.{index + 1}")
            except FileNotFoundError:
                pass
        if self.keep > 0:
            os.rename(name, f"{name}.1")
        else:
            os.unlink(name)
        self._reopen_if_moved()

    def _reopen_if_moved(self) -> None:
        """Follow a rotation another process made: write to the file at ``path``."""
        try:
            moved = os.stat(self.path, follow_symlinks=False).st_ino != os.fstat(self._fd).st_ino
        except FileNotFoundError:
            moved = True
        if moved:
            old, self._fd = self._fd, self._open()
            fcntl.flock(old, fcntl.LOCK_UN)
            os.close(old)
            fcntl.flock(self._fd, fcntl.LOCK_EX)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


_current: AccessLog | None = None
_failed = False  # a write failed and was reported
_configure_lock = threading.Lock()


def configure(
    state_dir: Path | None, max_bytes: int = MAX_BYTES, keep: int = KEEP
) -> AccessLog | None:
    """Send this process's ``record`` calls to ``<state_dir>/access.log`` (``None``: off),
    opened at the first event. Calling it again with the same settings keeps the file."""
    global _current, _failed
    with _configure_lock:
        _failed = False
        path = None if state_dir is None else state_dir / FILE
        if _current is not None and (
            _current.path,
            _current.max_bytes,
            _current.keep,
        ) == (path, max_bytes, keep):
            return _current
        if _current is not None:
            _current.close()
        _current = None if path is None else AccessLog(path, max_bytes, keep)
        return _current


def configure_from(config: Config) -> None:
    """The log ``config`` asks for (``[access_log]``: ``enabled``, ``max_bytes``,
    ``keep``); one that cannot be written is reported once, at its first event."""
    settings = config.access_log
    if settings.get("enabled", True) is False:
        configure(None)
        return
    configure(
        config.state_dir, int(settings.get("max_bytes", MAX_BYTES)), int(settings.get("keep", KEEP))
    )


def record(event: str, **fields: Any) -> None:
    """Append one event to the configured log (nothing when none is configured).

    Fields name things (``secret``, ``version``, ``run``, ``uid``, ``pid``, ``comm``);
    never pass a value. An open that was refused is still recorded; a log that cannot be
    written is not a reason to fail a run (or a FUSE open), so a write error is reported
    once and the event dropped.
    """
    global _failed
    current = _current
    if current is not None:
        try:
            current.record(event, fields)
        except (OSError, SecretdError) as exc:
            if not _failed:
                _failed = True
                reason = exc.line() if isinstance(exc, SecretdError) else exc.strerror
                log.warning("cannot write the access log %s: %s", current.path, reason)


def files(state_dir: Path) -> list[Path]:
    """The log and its rotated files that exist, oldest first."""
    base = state_dir / FILE
    rotated = sorted(
        (p for p in state_dir.glob(FILE + ".*") if p.suffix[1:].isdigit()),
        key=lambda p: int(p.suffix[1:]),
        reverse=True,
    )
    return [*rotated, *([base] if base.exists() else [])]


def read(
    state_dir: Path, since: float | None = None, secret: str | None = None
) -> Iterator[dict[str, Any]]:
    """The events of the log and its rotated files, oldest first, optionally only those
    at or after ``since`` (a Unix time) and about one ``secret`` name. A line that is not
    JSON (a torn write after a crash) is skipped."""
    for path in files(state_dir):
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                lines = list(fh)
        except FileNotFoundError:
            continue  # rotated away while we read
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if not isinstance(event, dict):
                continue
            if secret is not None and secret not in _names(event):
                continue
            if since is not None and _epoch(str(event.get("time", ""))) < since:
                continue
            yield event


def _names(event: dict[str, Any]) -> set[str]:
    """The secret names and files an event is about."""
    names = {str(event[key]) for key in ("secret", "file") if key in event}
    listed = event.get("secrets")
    for item in listed if isinstance(listed, list) else ():
        names.add(str(item.get("name")) if isinstance(item, dict) else str(item))
    return names


def _epoch(stamp: str) -> float:
    """``2026-12-01T02:10:00.123Z`` as a Unix time (0 for anything else)."""
    import calendar  # here: only reading the log needs it, not a run that writes to it

    try:
        whole, _, millis = stamp.rstrip("Z").partition(".")
        parsed = time.strptime(whole, "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return 0.0
    return calendar.timegm(parsed) + (int(millis) / 1000 if millis.isdigit() else 0.0)
