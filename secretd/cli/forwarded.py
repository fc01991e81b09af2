"""The daemon's side of the thin client (``thin.py``): a ``secretd run`` command line,
parsed by the same click command as in-process (``cli/run.py``), as the caller would have.

The request (``argv``) carries the arguments after ``run``, the caller's environment and
working directory, and its stdin, stdout and stderr. click reads the command line
(``run.read``: its parse, not its callback), then ``runcore.prepare`` builds the run
with the caller's environment given as a parameter (a bare ``-e KEY``, what a host
command inherits, ``env:`` patterns, ``CI``, ``SECRETD_REDACT``) and hands its exposure
warnings to a list, never touching the daemon's own ``os.environ`` or ``sys.stderr``:
every other thread, and every program the daemon starts, keeps the daemon's. The
warnings go to the caller's stderr, then the run is authorised and started exactly as a
``run`` request is (``Daemon.run_for``). The caller's environment goes along explicitly:
its ``env:`` secrets are read from it, by a provider of that run's own (``caller_run``),
never from the daemon's environment.

Anything the daemon could not do as the full CLI would is handed back before a byte of
output (``{"event": "fallback"}``): the client then runs the full CLI itself, which
prints the same errors and warnings, with the same exit status. That is: a flag click
refuses, a bad reference, ``--help``, a command line without a bare ``--`` right before
the command (an image, or a program on the caller's ``PATH``: the caller's images and
``PATH`` decide, and the daemon looks up neither), configs and templates, files named by
the caller (``--env-file``, ``env:VAR?file``, which the daemon would read with its own
rights), the caller's ``env:`` secrets with a name the daemon's config binds to ``env:``,
``--no-daemon`` and a host command without a sandbox.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import click

from .. import protocol, safeopen
from ..caller_run import bind_all
from ..config import Config
from ..errors import SecretdError
from ..protocol import Channel, Message, ProtocolError
from ..spec import RunSpec
from . import AppContext
from .boundary import bug_site
from .run import read
from .runcore import prepare

if TYPE_CHECKING:
    from ..daemon import Daemon
    from ..policy import Peer

log = logging.getLogger(__name__)
# Options (by dest) whose meaning depends on the caller's files or on its own process:
# their runs are handed back, before anything reads a file they name.
LOCAL = ("env_file", "configs", "templates", "no_daemon", "no_sandbox")
ARGV_MAX = 4096


class _HandBack(Exception):
    """The full CLI must do this run: nothing was printed, nothing started."""


class Forwarded:
    """The ``argv`` handler of ``daemon`` (``Daemon.handlers["argv"]``)."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def __call__(self, chan: Channel, peer: Peer, message: Message, fds: list[int]) -> None:
        argv, environ, cwd = _request(message, fds)
        try:
            spec, texts, warnings = self._read(peer, argv, environ)
        except _HandBack as exc:
            log.debug("forwarded run of uid=%d handed back to the client: %s", peer.uid, exc)
            chan.send({"event": "fallback"})
            return
        if warnings:
            text = "".join(f"{line}\n" for line in warnings)
            os.write(fds[2], text.encode(errors="backslashreplace"))
        self.daemon.run_for(chan, peer, spec, texts, cwd, fds, environ)

    def _read(
        self, peer: Peer, argv: list[str], environ: Mapping[str, str]
    ) -> tuple[RunSpec, tuple[str, ...], list[str]]:
        """The run ``argv`` asks for, read as the caller's full CLI reads it in
        ``environ``, its ``--secret`` texts and the warnings to print first.

        Raises:
            _HandBack: only the caller's full CLI can run it (and say what is wrong).
        """
        app = AppContext(flags={"log_level": None}, _config=self.daemon.config)
        warnings: list[str] = []
        trusted = self.daemon.policy.is_superuser(peer)
        try:
            with safeopen.reading_for(peer.uid, peer.groups, trusted):
                args, no_image, opts = read(argv)
                _check_options(opts, no_image)
                spec = prepare(app, args, no_image, opts, environ, warnings.append)
        except _HandBack:
            raise
        except (SecretdError, click.ClickException) as exc:  # the full CLI says it
            raise _HandBack(type(exc).__name__) from None
        except Exception as exc:  # noqa: BLE001 - a bug here: the full CLI runs it, the log says
            log.warning(
                "reading a forwarded run failed: %s in %s; handed back", type(exc).__name__,
                bug_site(exc),
            )  # fmt: skip
            raise _HandBack(type(exc).__name__) from None
        _check_forwardable(spec)
        _check_secrets(opts["secrets"], self.daemon.config, environ)
        return spec, opts["secrets"], warnings


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


def _check_options(opts: Mapping[str, object], no_image: bool) -> None:
    """Raises _HandBack for a command line only the caller's CLI may act on: one that
    names files (``--env-file``, ``--config``, ``--template``: the daemon would read them
    with its own rights), ``--no-daemon``, ``--no-sandbox``, or no bare ``--`` right
    before the command (an image, or a program on the caller's ``PATH``: the daemon
    looks for neither). Read from click's values: a ``--`` may be an option's value."""
    if not no_image:
        raise _HandBack("an image, or a program on the caller's PATH")
    given = [dest for dest in LOCAL if opts[dest]]
    if given:
        raise _HandBack(f"{given[0]} is the caller's to act on")


def _check_forwardable(spec: RunSpec) -> None:
    """Raises _HandBack for what only the full CLI does as it would without a daemon."""
    if spec.runtime == "host" or spec.image is not None:
        raise _HandBack("a run the full CLI does itself")


def _check_secrets(texts: Sequence[str], config: Config, environ: Mapping[str, str]) -> None:
    """Raises _HandBack for ``env:`` secrets the daemon refuses to read for the caller
    (``caller_run.bind_all``: ``env:VAR?file``, or mixed with the daemon's own)."""
    try:
        bind_all(texts, config, environ)
    except SecretdError as exc:
        raise _HandBack(type(exc).__name__) from None


def handlers(daemon: Daemon) -> dict[str, Callable[[Channel, Peer, Message, list[int]], None]]:
    """The requests this module adds to ``daemon``."""
    return {"argv": Forwarded(daemon)}
