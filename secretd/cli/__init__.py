"""The ``secretd`` command: parses flags, calls the library, prints. No business logic.

Each command group lives in its own module of this package. Nothing here imports click:
``base.py`` holds the shared context, logging and the table of commands, ``boundary.py``
the one error boundary, ``app.py`` the click group.
"""

from __future__ import annotations

from typing import NoReturn

from .base import COMMANDS, AppContext, setup_logging
from .boundary import guarded

__all__ = ["COMMANDS", "AppContext", "main", "setup_logging"]


def main() -> NoReturn:
    """Entry point: the command line read by click, errors turned into one line and an
    exit code (``boundary.guarded``)."""
    from .app import run_click

    guarded(run_click)
