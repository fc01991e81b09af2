"""The one error boundary of the command line, without click: every failure becomes one
line on stderr and an exit code, whichever parser read the command line (click's in
``app.py``, or ``quickrun.py`` for a plain ``secretd run``), and the process ends without
the interpreter's teardown."""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from ..errors import SecretdError, printable

_PACKAGE = Path(__file__).resolve().parent.parent  # the secretd package, named in bug reports


def guarded(call: Callable[[], object]) -> NoReturn:
    """Run ``call``: a ``SecretdError`` becomes its line and exit code, any other exception
    an internal error, ``SystemExit`` its status; then leave."""
    try:
        try:
            call()
        except SecretdError as exc:
            fail(exc.line(), exc.exit_code)
        except Exception as exc:  # noqa: BLE001 - the last resort: a bug, not a traceback
            internal_error(exc)
    except SystemExit as exc:
        leave(exc.code)
    leave(0)


def leave(code: str | int | None) -> NoReturn:
    """End the process as ``sys.exit(code)`` would, without the interpreter's teardown
    (~15 ms of freeing modules and objects nobody reads again): flush, run the ``atexit``
    functions (logging's flush among them), then ``os._exit``. With another thread still
    running, Python's own exit waits for it as usual."""
    if threading.active_count() > 1:
        sys.exit(code)
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code & 0xFF
    else:
        print(code, file=sys.stderr)
        status = 1
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:
        status = status or 120  # what Python's own exit makes of an unflushable stdout
    os._exit(status)


def fail(line: str, code: int) -> NoReturn:
    """``secretd: LINE`` on stderr (control characters escaped), then exit ``code``."""
    echo_err(f"secretd: {printable(line)}")
    sys.exit(code)


def echo_err(line: str) -> None:
    """One line on stderr, flushed (as ``click.echo(err=True)`` writes it)."""
    print(line, file=sys.stderr, flush=True)


def internal_error(exc: Exception) -> NoReturn:
    """A bug reached the boundary: name its type and where it happened, never its text
    (a library's message may quote a request, a token or a value). With ``--debug`` (or
    log level debug) the stack follows, still without any exception's text."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" in {site}" if (site := bug_site(exc)) else ""
    if logging.getLogger("secretd").isEnabledFor(logging.DEBUG):
        stack = "".join(traceback.format_list(frames)).rstrip("\n")
        echo_err(f"Traceback (exception texts left out):\n{stack}")
    if isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        fail(f"cannot use {exc.filename}: {exc.strerror}", 125)  # a path, never a value
    fail(f"internal error: {type(exc).__name__}{where}; please report it", 125)


def bug_site(exc: BaseException) -> str:
    """Where ``exc`` was raised, as ``secretd/FILE.py:LINE (function)`` (the last frame of
    secretd's own), never its text; empty without a traceback."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [frame for frame in frames if _in_secretd(frame.filename)] or frames
    return _where(ours[-1]) if ours else ""


def _in_secretd(filename: str) -> bool:
    return Path(filename).is_relative_to(_PACKAGE)


def _where(frame: traceback.FrameSummary) -> str:
    path = Path(frame.filename)
    shown = path.relative_to(_PACKAGE.parent) if _in_secretd(frame.filename) else path.name
    return f"{shown}:{frame.lineno} ({frame.name})"
