"""``secretd run`` without click: a plain command line read with ``run_flags.FLAGS`` the
way click reads it, then the same ``runcore.start`` (click and its command cost ~10 ms of
every in-process run).

``parse`` either returns exactly what click's command would give its callback (every
option's value with its default and type, the words after the options, and whether a bare
``--`` came before them) or ``None``, and click reads the line instead, with its own help
and its own messages: ``-h``/``--help``, an option not in the table, short options run
together (``-it``, ``-eKEY=V``), a missing value, a value click would refuse (a number,
a choice, an unreadable ``--env-file``), a value on a flag (``--tty=yes``).
"""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path
from typing import Any

from .base import AppContext, setup_logging
from .boundary import echo_err, fail
from .run_flags import FLAG, FLAGS, FLOAT, MULTIPLE, PATH, SWITCH, Flag


def _by_name() -> dict[str, tuple[Flag, object]]:
    """Every option name -> its row, and the value a flag or switch name gives."""
    names: dict[str, tuple[Flag, object]] = {}
    for flag in FLAGS:
        names |= dict.fromkeys(flag.names, (flag, True))
        if flag.off:
            names[flag.off] = (flag, False)
    return names


_NAMES = _by_name()


def parse(args: list[str]) -> tuple[dict[str, Any], bool] | None:
    """The parameters click would pass for ``secretd run ARGS`` (``args`` as a tuple
    among them) and whether there is no image, or ``None`` for click to read it."""
    params: dict[str, Any] = {flag.dest: flag.unset() for flag in FLAGS}
    given: dict[str, list[Any]] = {}
    i, bare = 0, False
    while i < len(args):
        arg = args[i]
        if arg == "--":
            i, bare = i + 1, True
            break
        if arg[:1] != "-" or arg == "-":
            break  # the first word of the command: options end here (no interspersing)
        name, eq, explicit = arg.partition("=") if arg[:2] == "--" else (arg, "", "")
        known = _NAMES.get(name) if len(name) == 2 or arg[:2] == "--" else None  # no -it
        if known is None:
            return None
        flag, on = known
        if flag.kind in (FLAG, SWITCH):
            if eq:
                return None
            params[flag.dest] = on
            i += 1
            continue
        if eq:
            text, i = explicit, i + 1
        elif i + 1 < len(args):
            text, i = args[i + 1], i + 2
        else:
            return None
        value = _convert(flag, text)
        if value is None:
            return None
        if flag.kind == MULTIPLE:
            given.setdefault(flag.dest, []).append(value)
        else:
            params[flag.dest] = value
    params |= {dest: tuple(values) for dest, values in given.items()}
    params["args"] = tuple(args[i:])
    return params, bare


def _convert(flag: Flag, text: str) -> object | None:
    """``text`` as click's type for the option converts it; ``None`` where it would refuse."""
    if "\0" in text:
        return None
    if flag.convert == FLOAT:
        try:
            return float(text)
        except ValueError:
            return None
    if flag.convert == PATH:
        try:
            os.stat(text)
        except OSError:
            return Path(text)
        return Path(text) if os.access(text, os.R_OK) else None
    if flag.choices is not None and text not in flag.choices:
        return None
    return text


def start(params: dict[str, Any], no_image: bool) -> None:
    """Run what ``parse`` read, as click's group and command would: logging set up
    (``SECRETD_LOG_LEVEL``, else warning), ``runcore.start``; ^C and end of input reported
    as click reports them, a closed stdout ending with 1 as under click."""
    from .runcore import start as run

    setup_logging(os.environ.get("SECRETD_LOG_LEVEL") or "warning")
    opts = dict(params)
    args = opts.pop("args")
    try:
        run(AppContext(flags={"log_level": None}), args, no_image, opts)
    except (EOFError, KeyboardInterrupt):
        echo_err("")
        fail("aborted", 130)
    except OSError as exc:
        if exc.errno != errno.EPIPE:
            raise
        sys.exit(1)
