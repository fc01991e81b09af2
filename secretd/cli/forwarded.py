"""The daemon's side of the thin client (``thin.py``): a ``secretd run`` command line,
parsed by the same click command as in-process (``cli/run.py``), as the caller would have.

The request (``argv``) carries the arguments after ``run``, the caller's environment and
working directory, and its stdin, stdout and stderr. While the command line is parsed,
this thread (only this one) sees the caller's environment as ``os.environ`` (a bare
``-e KEY``, what a host command inherits, ``CI``), and what ``run`` prints on stderr
(exposure warnings) is held back. When the parse reaches ``client.run``, the run is
authorised and started exactly as a ``run`` request is (``Daemon`` does it, with the
daemon's own environment again), after the warnings went to the caller's stderr. The
caller's environment goes along explicitly: its ``env:`` secrets are read from it, by a
provider of that run's own (``caller_run``), never from the daemon's environment.

Anything the daemon could not do as the full CLI would is handed back before a byte of
output (``{"event": "fallback"}``): the client then runs the full CLI itself, which
prints the same errors and warnings, with the same exit status. That is: a flag click
refuses, a bad reference, ``--help``, a command line without ``--`` (image or program:
the caller's images and ``PATH`` decide), an image, configs and templates, files named by
the caller (``--env-file``, ``env:VAR?file``, which the daemon would read with its own
rights), the caller's ``env:`` secrets with a name the daemon's config binds to ``env:``,
``--no-daemon`` and a host command without a sandbox.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from .. import client, protocol, safeopen
from ..caller_run import bind_all
from ..config import Config
from ..errors import SecretdError
from ..protocol import Channel, Message, ProtocolError
from ..spec import RunSpec
from . import AppContext
from .run import run as run_command

if TYPE_CHECKING:
    from ..daemon import Daemon
    from ..policy import Peer

log = logging.getLogger(__name__)
# Options whose meaning depends on the caller's files or on this process: handed back.
HANDED_BACK = ("--env-file", "--config", "--template", "--no-daemon", "--no-sandbox")
ARGV_MAX = 4096


class _HandBack(Exception):
    """The full CLI must do this run: nothing was printed, nothing started."""


class _Launched(Exception):  # noqa: N818 - a wrapper, not an error of its own
    """What the run request raised, carried out of click's callback unchanged."""

    def __init__(self, inner: BaseException) -> None:
        super().__init__()
        self.inner = inner


class Forwarded:
    """The ``argv`` handler of ``daemon`` (``Daemon.handlers["argv"]``)."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        _CallerView.install()

    def __call__(self, chan: Channel, peer: Peer, message: Message, fds: list[int]) -> None:
        argv, environ, cwd = _request(message, fds)
        if "--" not in argv:  # image or program: the caller's images and PATH decide
            _hand_back(chan, peer, "no -- before the command")
            return
        if any(arg.split("=", 1)[0] in HANDED_BACK for arg in _options(argv)):
            _hand_back(chan, peer, "an option the full CLI reads")
            return
        held = io.StringIO()
        launched: list[bool] = []

        def launch(config: Config, spec: RunSpec, texts: Sequence[str], no_daemon: bool) -> int:
            _check_forwardable(spec, no_daemon)
            _check_secrets(texts, config, environ)
            _CallerView.leave()
            launched.append(True)
            if held.getvalue():
                os.write(fds[2], held.getvalue().encode(errors="backslashreplace"))
            wire = json.loads(json.dumps(spec.to_json() | {"secrets": []}))  # as sent by a client
            run = protocol.request("run", spec=wire, secrets=list(texts), cwd=cwd)
            try:
                self.daemon._run(chan, peer, run, fds, environ)
            except BaseException as exc:  # noqa: B036 - out of click's hands, as it was
                raise _Launched(exc) from None
            return 0

        app = AppContext(flags={"log_level": None}, _config=self.daemon.config)
        trusted = self.daemon.policy.is_superuser(peer)
        try:
            with (
                safeopen.reading_for(peer.uid, peer.groups, trusted),
                _CallerView.enter(environ, held),
            ):
                _CallerView.launch_with(launch)
                run_command.main(argv, "secretd run", standalone_mode=False, obj=app)
        except _Launched as exc:
            raise exc.inner from None
        except SystemExit:
            if not launched:
                _hand_back(chan, peer, "it ended before starting")
        except Exception as exc:  # noqa: BLE001 - whatever it is, the full CLI says it
            if launched:
                raise
            _hand_back(chan, peer, type(exc).__name__)


def _hand_back(chan: Channel, peer: Peer, why: str) -> None:
    log.debug("forwarded run of uid=%d handed back to the client: %s", peer.uid, why)
    chan.send({"event": "fallback"})


def _request(message: Message, fds: list[int]) -> tuple[list[str], dict[str, str], str]:
    """The arguments, environment and working directory of an ``argv`` request.

    Raises:
        ProtocolError: a field is missing or of the wrong type, or stdio is not passed.
    """
    if len(fds) != 3:
        raise ProtocolError("an argv request carries 3 descriptors: stdin, stdout, stderr")
    argv = protocol.strings(message, "argv")
    if not argv or len(argv) > ARGV_MAX or any("\0" in arg for arg in argv):
        raise ProtocolError(f"argv must hold 1 to {ARGV_MAX} arguments without NUL")
    environ = message.get("env")
    if not isinstance(environ, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and k and "=" not in k and "\0" not in k + v
        for k, v in environ.items()
    ):
        raise ProtocolError("env must be an object of strings (NAME: value)")
    cwd = message.get("cwd")
    if not (isinstance(cwd, str) and cwd.startswith("/") and "\0" not in cwd):
        raise ProtocolError("the cwd of an argv request must be an absolute path")
    return argv, environ, cwd


def _options(argv: Sequence[str]) -> Sequence[str]:
    return argv[: argv.index("--")] if "--" in argv else argv


def _check_forwardable(spec: RunSpec, no_daemon: bool) -> None:
    """Raises _HandBack for what only the full CLI does as it would without a daemon."""
    local = no_daemon or spec.configs or spec.templates or spec.runtime == "host"
    if local or spec.image is not None:
        raise _HandBack


def _check_secrets(texts: Sequence[str], config: Config, environ: Mapping[str, str]) -> None:
    """Raises _HandBack for ``env:`` secrets the daemon refuses to read for the caller
    (``caller_run.bind_all``: ``env:VAR?file``, or mixed with the daemon's own)."""
    try:
        bind_all(texts, config, environ)
    except SecretdError:
        raise _HandBack from None


Launcher = Callable[[Config, RunSpec, Sequence[str], bool], int]


class _Thread(threading.local):
    environ: Mapping[str, str] | None = None
    stderr: TextIO | None = None
    launch: Launcher | None = None


class _CallerView:
    """``os.environ`` and ``sys.stderr`` of the daemon, seen as the caller's by the one
    thread parsing a forwarded command line (``enter``) until it starts the run
    (``leave``); every other thread, and this one outside, sees the daemon's own. In that
    thread, ``client.run`` (which ``run`` ends with) is the launcher given to
    ``launch_with``: the daemon serves runs, it never calls ``client.run`` for itself."""

    _local = _Thread()
    _lock = threading.Lock()

    @classmethod
    def install(cls) -> None:
        with cls._lock:
            if not isinstance(os.environ, _Environ):
                os.environ = _Environ(os.environ, cls._local)  # type: ignore[assignment]  # noqa: B003
            if not isinstance(sys.stderr, _Stderr):
                sys.stderr = _Stderr(sys.stderr, cls._local)
            if client.run is not _launch:
                client.run = _launch

    @classmethod
    @contextlib.contextmanager
    def enter(cls, environ: Mapping[str, str], stderr: TextIO) -> Iterator[None]:
        cls._local.environ, cls._local.stderr = environ, stderr
        try:
            yield
        finally:
            cls.leave()

    @classmethod
    def launch_with(cls, launcher: Launcher) -> None:
        cls._local.launch = launcher

    @classmethod
    def leave(cls) -> None:
        cls._local.environ = cls._local.stderr = None
        cls._local.launch = None


def _launch(config: Config, spec: RunSpec, secrets: Sequence[str], no_daemon: bool = False) -> int:
    """``client.run`` in the daemon: only a thread parsing a forwarded run reaches it."""
    launcher = _CallerView._local.launch
    if launcher is None:
        raise _HandBack
    return launcher(config, spec, secrets, no_daemon)


class _Environ(MutableMapping[str, str]):
    """``os.environ``: the caller's variables in a parsing thread, else the real ones
    (changes always go to the real ones)."""

    def __init__(self, real: MutableMapping[str, str], local: _Thread) -> None:
        self._real = real
        self._local = local

    def _view(self) -> Mapping[str, str]:
        return self._local.environ if self._local.environ is not None else self._real

    def __getitem__(self, key: str) -> str:
        return self._view()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._view()))

    def __len__(self) -> int:
        return len(self._view())

    def __setitem__(self, key: str, value: str) -> None:
        self._real[key] = value

    def __delitem__(self, key: str) -> None:
        del self._real[key]

    def copy(self) -> dict[str, str]:
        return dict(self._view())


class _Stderr:
    """``sys.stderr``: held back in a parsing thread, else the daemon's own."""

    def __init__(self, real: TextIO, local: _Thread) -> None:
        self._real = real
        self._local = local

    def _target(self) -> TextIO:
        return self._local.stderr if self._local.stderr is not None else self._real

    @property
    def encoding(self) -> str:
        return self._real.encoding

    @property
    def errors(self) -> str | None:
        return self._real.errors

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self._target().flush()

    def isatty(self) -> bool:
        return self._local.stderr is None and self._real.isatty()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def handlers(daemon: Daemon) -> dict[str, Callable[[Channel, Peer, Message, list[int]], None]]:
    """The requests this module adds to ``daemon``."""
    return {"argv": Forwarded(daemon)}
