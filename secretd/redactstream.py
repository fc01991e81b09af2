"""Put ``redact.py`` between a command and the stdout/stderr it was given.

The engine launches the command with a pipe (or, where the real output is a terminal, a
pseudo-terminal) in place of its stdout and stderr; one thread per stream copies what the
command writes through its own ``Redactor`` to the real descriptor. It runs where the
values are, in the engine: in-process, or in the daemon with the client's descriptors,
so values never travel to a client that does not already hold them (docs/architecture.md).

* stdout and stderr that lead to one place (``2>&1``, one terminal) get one channel, so
  their lines stay in the order the command wrote them.
* A terminal stays a terminal: the command's stdout (and stderr, if it is the same
  terminal) is the slave of a new pty with the real terminal's size, so ``isatty`` holds
  and colour and progress bars survive; output post-processing is left to the real
  terminal (the slave's ``OPOST`` is off, so bytes pass as written). stdin is left
  alone: the command reads the real terminal, which keeps echo, line editing, Ctrl-C and
  password prompts exactly as without redaction.
* Bytes are only replaced where a value's form is; nothing else changes, binary included.
  Held-back bytes are shown after ``IDLE`` seconds without output, so prompts appear.
* The exit status and signals are the command's: the filter never touches them. When the
  reader of the real output leaves (``| head``), the filter closes its end, so the command
  gets ``SIGPIPE`` as it would have.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import select
import signal
import stat
import termios
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from .config import Config, redact_setting
from .errors import SecretdError
from .mount.atomic import DIR_FLAGS, walk
from .redact import REPLACEMENT, Redactable, Redactor, redactables
from .spec import Container, RunSpec, Secret, SecretFile, SecretMount, SecretRef, Stdio

IDLE = 0.1  # seconds without output after which held-back bytes are shown
CHUNK = 1 << 16
DRAIN = 2.0  # seconds the last output may take to arrive (and to leave) after the end
SIZE_CHECK = 0.25  # seconds between looks at a terminal's size (for its pty)
log = logging.getLogger(__name__)


class Launcher(Protocol):
    """What ``Engine`` launches through (the ``Runtime`` protocol's ``launch``)."""

    def launch(self, spec: RunSpec, mount: SecretMount, stdio: Stdio) -> Container: ...


def redacting(
    runtime: Launcher, spec: RunSpec, refs: Sequence[SecretRef], secrets: Sequence[Secret]
) -> Launcher:
    """``runtime``, or when ``spec.redact`` asks for it, a launcher whose commands' output
    is redacted (a detached command's goes to its logs, which ``secretd logs`` redacts).

    The values are read, and the short-value warnings given, once for the run; each launch
    (a restart launches again) gets its own filter, stopped by its container's ``remove()``
    once the last output has been shown.
    """
    if spec.redact is False or spec.detach:
        return runtime
    kept = tuple(ref.target for ref in refs if ref.kind != "secret" or not ref.redact)
    return RedactingLauncher(runtime, values(refs, secrets), kept)


class RedactingLauncher:
    """Launches through ``runtime`` with stdout and stderr filtered; ``kept`` are the
    targets whose files are not masked (configs, ``redact=false``)."""

    def __init__(self, runtime: Launcher, found: list[Redactable], kept: tuple[str, ...]) -> None:
        self.runtime = runtime
        self.values = found
        self.kept = kept
        self.redactor: Redactor | None = None

    def launch(self, spec: RunSpec, mount: SecretMount, stdio: Stdio) -> Container:
        if spec.redact is None and os.isatty(stdio[1]):  # the default, on a terminal
            return self.runtime.launch(spec, mount, stdio)
        if self.redactor is None:
            self.redactor = Redactor(self.values, REPLACEMENT, warn=_warner(stdio[2]))
        else:  # a restart: the values swapped in meanwhile are the files' now
            self.redactor.add(self._masked(mount.files))
        output = Filter(stdio, self.redactor)
        try:
            container = self.runtime.launch(spec, mount, output.stdio)
            return Filtered(container, output, self._masked)
        except BaseException:
            output.close()
            raise

    def _masked(self, files: Sequence[SecretFile]) -> list[Redactable]:
        return [
            Redactable(file.target, file.value)
            for file in files
            if not file.config and (file.group or file.target) not in self.kept
        ]


def values(refs: Sequence[SecretRef], secrets: Sequence[Secret]) -> list[Redactable]:
    """The values to mask: every secret's (not configs'), unless its reference says
    ``redact=false``."""
    found: list[Redactable] = []
    for ref, secret in zip(refs, secrets, strict=True):
        if ref.kind == "secret":
            found += [
                Redactable(item.name, item.value, ref.redact) for item in redactables([secret])
            ]
    return found


def _warner(fd: int) -> Callable[[str], None]:
    """Warnings go to the command's real stderr: the user's, even through the daemon."""

    def warn(message: str) -> None:
        with contextlib.suppress(OSError):
            write_all(fd, f"secretd: warning: {message}\n".encode())

    return warn


class Filtered:
    """A container whose output passes through a ``Filter`` (the Container protocol);
    values swapped in while it runs are masked from then on."""

    def __init__(
        self,
        inner: Container,
        output: Filter,
        masked: Callable[[Sequence[SecretFile]], list[Redactable]],
    ) -> None:
        self.inner = inner
        self.output = output
        self.masked = masked
        self.id = inner.id
        output.follow_size(lambda: inner.signal(signal.SIGWINCH))

    def wait(self, timeout: float | None = None) -> int | None:
        return self.inner.wait(timeout)

    def update(self, files: tuple[SecretFile, ...]) -> None:
        self.output.add(self.masked(files))  # before the command can read them
        self.inner.update(files)

    def signal(self, signum: signal.Signals) -> None:
        if signum == signal.SIGWINCH:
            self.output.resize()
        self.inner.signal(signum)

    def remove(self) -> None:
        try:
            self.inner.remove()
        finally:
            self.output.close()


class Filter:
    """Pipes or ptys in place of ``stdio``'s stdout and stderr, each drained through a
    copy of ``redactor`` by a thread. ``stdio`` is what the command gets; ``close()``
    waits for its last output (up to ``DRAIN`` seconds) and releases everything."""

    def __init__(self, real: Stdio, redactor: Redactor) -> None:
        self._ends: list[int] = []  # the command's ends, closed here once it has them
        self._ptys: list[tuple[int, int]] = []  # (master, real terminal)
        self._threads: list[threading.Thread] = []
        self._redactors: list[Redactor] = []
        self._watcher: threading.Thread | None = None
        self._closing = threading.Event()
        self._stop_r, self._stop_w = os.pipe()
        outs: list[int] = []
        try:
            for index, fd in enumerate(real[1:]):
                if index == 1 and _same_file(real[1], fd):
                    outs.append(outs[0])  # one channel keeps 2>&1's order
                    continue
                read_end, write_end = self._channel(fd)
                outs.append(write_end)
                self._start(read_end, fd, redactor.stream())
        except BaseException:
            self.close()
            raise
        self.stdio: Stdio = (real[0], outs[0], outs[1])

    def _channel(self, real: int) -> tuple[int, int]:
        if os.isatty(real):
            master, slave = os.openpty()
            self._ends.append(slave)
            self._ptys.append((master, real))
            attrs = termios.tcgetattr(slave)
            attrs[1] &= ~termios.OPOST  # the real terminal does the output processing
            termios.tcsetattr(slave, termios.TCSANOW, attrs)
            _copy_size(real, master)
            return master, slave
        read_end, write_end = os.pipe()
        self._ends.append(write_end)
        return read_end, write_end

    def add(self, found: list[Redactable]) -> None:
        """Mask ``found`` too, from now on, in every stream."""
        for redactor in self._redactors:
            redactor.add(found)

    def _start(self, read_end: int, real: int, redactor: Redactor) -> None:
        self._redactors.append(redactor)
        thread = threading.Thread(
            target=self._run, args=(read_end, real, redactor), name="redact", daemon=True
        )
        self._threads.append(thread)
        thread.start()

    def _run(self, read_end: int, real: int, redactor: Redactor) -> None:
        try:
            pump(read_end, real, redactor, self._stop_r)
        except OSError:
            pass  # the reader left (EPIPE): closing our end gives the command SIGPIPE
        finally:
            os.close(read_end)

    def resize(self) -> bool:
        """Give each pty its real terminal's size again; whether one changed."""
        changed = False
        for master, real in self._ptys:
            changed |= _copy_size(real, master)
        return changed

    def follow_size(self, notify: Callable[[], None]) -> None:
        """Keep each pty at its terminal's size, calling ``notify`` after a change (then
        the command is told with SIGWINCH): a terminal's own SIGWINCH goes to its
        foreground group, the command's, which then reads its pty's old size."""
        if self._ptys:
            self._watcher = threading.Thread(
                target=self._follow, args=(notify,), name="redact-size", daemon=True
            )
            self._watcher.start()

    def _follow(self, notify: Callable[[], None]) -> None:
        while not self._closing.wait(SIZE_CHECK):
            if self.resize():
                try:
                    notify()
                except (SecretdError, OSError) as exc:  # it ended meanwhile
                    log.debug("could not tell the command of a resize: %s", exc)

    def close(self) -> None:
        """Close the command's ends, show its last output, stop the threads."""
        if self._stop_w < 0:
            return
        self._closing.set()
        if self._watcher is not None:  # before the ptys' descriptors close
            self._watcher.join()
        self._ptys, self._watcher = [], None
        for fd in self._ends:
            os.close(fd)
        self._ends = []
        for thread in self._threads:
            thread.join(DRAIN)
        os.write(self._stop_w, b"x")  # a leftover process still holds a write end
        for thread in self._threads:
            thread.join(DRAIN)
        stuck = [thread for thread in self._threads if thread.is_alive()]
        self._threads = []
        if stuck:  # blocked writing to a reader that does not read: never wait on it
            log.warning("the reader of a command's output does not read; leaving its filter")
        else:  # (else the stop pipe stays open for the stuck thread)
            for fd in (self._stop_r, self._stop_w):
                os.close(fd)
        self._stop_r = self._stop_w = -1


def pump(fd_in: int, fd_out: int, redactor: Redactor, stop: int | None = None) -> None:
    """Filter ``fd_in`` to ``fd_out`` until end of input (a closed pty reads ``EIO``), or
    until ``stop`` is readable and what ``fd_in`` already holds is shown; held-back bytes
    are shown after ``IDLE`` seconds without input.

    Raises:
        OSError: writing ``fd_out`` failed (``BrokenPipeError``: its reader left).
    """
    watched = select.poll()  # not select(): a busy daemon's descriptors pass 1024
    for fd in (fd_in,) if stop is None else (fd_in, stop):
        watched.register(fd, select.POLLIN)
    while True:
        ready = {fd for fd, _ in watched.poll(IDLE * 1000 if redactor.held else None)}
        if not ready:
            write_all(fd_out, redactor.flush())
            continue
        if fd_in not in ready:
            while _readable(fd_in) and _copy(fd_in, fd_out, redactor):
                pass
            break
        if not _copy(fd_in, fd_out, redactor):
            break
    write_all(fd_out, redactor.flush())


def _readable(fd: int) -> bool:
    probe = select.poll()
    probe.register(fd, select.POLLIN)
    return bool(probe.poll(0))


def _copy(fd_in: int, fd_out: int, redactor: Redactor) -> bool:
    """One read's worth; ``False`` at the end of input."""
    try:
        data = os.read(fd_in, CHUNK)
    except OSError as exc:
        if exc.errno != errno.EIO:  # a pty whose every slave is closed
            raise
        data = b""
    if data:
        write_all(fd_out, redactor.write(data))
    return bool(data)


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data``, waiting while a non-blocking ``fd`` is full (a terminal or
    pipe someone else made non-blocking), as the command's own writes would have."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            waiting = select.poll()
            waiting.register(fd, select.POLLOUT)
            waiting.poll()


def _same_file(a: int, b: int) -> bool:
    """Whether stdout and stderr lead to one place (a terminal, ``2>&1`` into a pipe or
    a file): then the command gets one channel for both, or the two filters' threads
    would reorder lines the command wrote in turn."""
    first, second = os.fstat(a), os.fstat(b)
    return (first.st_dev, first.st_ino) == (second.st_dev, second.st_ino)


def _copy_size(real: int, pty: int) -> bool:
    """Give ``pty`` the size of the terminal ``real``; whether it changed."""
    try:
        size = fcntl.ioctl(real, termios.TIOCGWINSZ, b"\0" * 8)
        if size == fcntl.ioctl(pty, termios.TIOCGWINSZ, b"\0" * 8):
            return False
        fcntl.ioctl(pty, termios.TIOCSWINSZ, size)
    except OSError:
        return False
    return True


def redact_default(config: Config, environ: Mapping[str, str] | None = None) -> bool | None:
    """``--redact``'s default for ``run`` and ``logs``: ``SECRETD_REDACT`` in ``environ``
    (default: secretd's environment) or ``redact`` in the config if it is ``true`` or
    ``false``; else on in CI; else ``None``: on unless stdout is a terminal (where output
    is kept, values are masked). ``run`` leaves that last test to the engine, which has
    the stdout the command gets: a daemon parsing a forwarded command line
    (cli/forwarded.py) has its caller's environment, not its stdout. The variable is read
    here too for that same daemon, whose config is its own."""
    from .ci import detect

    env = os.environ if environ is None else environ
    told = redact_setting(env.get("SECRETD_REDACT", ""))
    if told in ("true", "false"):
        return told == "true"
    if config.redact != "auto":
        return config.redact == "true"
    return True if detect(env) is not None else None


def copy_file(path: Path, fd_out: int, redactor: Redactor | None) -> None:
    """Write the file at ``path`` to ``fd_out``, redacted unless ``redactor`` is ``None``
    (``secretd logs``); a missing file writes nothing."""
    try:
        fd_in = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        stream = redactor.stream() if redactor is not None else None
        while chunk := os.read(fd_in, CHUNK):
            write_all(fd_out, stream.write(chunk) if stream is not None else chunk)
        if stream is not None:
            write_all(fd_out, stream.flush())
    finally:
        os.close(fd_in)


def log_redactor(config: Config, mount: str, names: Sequence[str]) -> Redactor:
    """A redactor for a detached container's logs (``mount`` and ``names`` from its
    record). Short values are not masked, as in ``run``, but not warned about at each
    reading either."""
    return Redactor(_log_values(config, mount, names), REPLACEMENT, warn=log.debug)


def _log_values(config: Config, mount: str, names: Sequence[str]) -> list[Redactable]:
    """What to mask in a detached container's logs: the files of its secrets mount while
    it is there (the values the container has), else its secrets resolved again by name
    (a dynamic secret then has a new value: docs/redaction.md). A name that no longer
    resolves is named in a warning and skipped."""
    if mount and os.path.isdir(mount):
        return _mounted(Path(mount))
    from ._resolve import resolve
    from .refs import parse_ref

    found: list[Redactable] = []
    for name in names:
        try:
            ref = parse_ref(name, config.secrets)
            with resolve([ref], config) as secrets:
                found += values([ref], secrets)
        except SecretdError as exc:
            log.warning("cannot mask secret %r in the logs: %s", name, exc.line())
    return found


def _mounted(path: Path) -> list[Redactable]:
    """Every regular file of the secrets tmpfs at ``path``, by its path inside it (the
    configs' tmpfs is another mount, which ``walk`` does not enter)."""
    found: list[Redactable] = []
    root = os.open(path, DIR_FLAGS)
    try:
        for parent, name, st in walk(root):
            if stat.S_ISREG(st.st_mode):
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
                try:
                    found.append(Redactable(name, os.read(fd, st.st_size + 1)))
                finally:
                    os.close(fd)
    finally:
        os.close(root)
    return found
