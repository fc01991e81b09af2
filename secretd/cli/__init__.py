"""The ``secretd`` command: parses flags, calls the library, prints. No business logic.

Each command group lives in its own module of this package. Nothing here imports click:
``base.py`` holds the shared context, logging and the table of commands, ``boundary.py``
the one error boundary, ``app.py`` the click group, ``quickrun.py`` the reading of a
plain ``secretd run`` without click.
"""

from __future__ import annotations

import sys
from typing import NoReturn

from .base import COMMANDS, AppContext, setup_logging
from .boundary import guarded

__all__ = ["COMMANDS", "AppContext", "main", "setup_logging"]


def main() -> NoReturn:
    """Entry point: a plain ``secretd run`` read without click (``quickrun.py``), any
    other command line by click; errors turned into one line and an exit code
    (``boundary.guarded``)."""
    args = sys.argv[1:]
    if args[:1] == ["run"]:
        from .quickrun import parse, start

        parsed = parse(args[1:])
        if parsed is not None:
            guarded(lambda: start(*parsed))
    from .app import run_click

    guarded(run_click)
