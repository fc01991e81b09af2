"""``secretd redact``: copy standard input to standard output with secrets masked.

``cat build.log | secretd redact --secret api_key``: the references resolve as ``run``'s
do (same grammar, same broker); the values are masked by ``secretd/redact.py``. Output
held back for a value that may continue is released after a short idle, so a prompt
without a newline still shows.
"""

from __future__ import annotations

import os
import select
from typing import TYPE_CHECKING

import click

from ..errors import UsageError
from . import AppContext

if TYPE_CHECKING:
    from ..redact import Redactor

IDLE = 0.1  # seconds without input after which held-back bytes are shown
CHUNK = 1 << 16


@click.command()
@click.option(
    "--secret", "refs", multiple=True, metavar="REF",
    help="A secret whose value to mask (repeatable; run's reference grammar).",
)  # fmt: skip
@click.option(
    "--replacement", default="[MASKED]", show_default=True, help="What stands for a value."
)
@click.pass_obj
def redact(app: AppContext, refs: tuple[str, ...], replacement: str) -> None:
    """Copy stdin to stdout with every form of the secrets' values masked.

    Raw, each line of a multi-line value, base64 and base64url, hex, URL-encoded and
    JSON-escaped forms are masked; values under 8 bytes are not (with a warning).
    """
    from .._resolve import resolve
    from ..redact import Redactor, redactables

    if not refs:
        raise UsageError("nothing to redact", "name a secret with --secret REF")
    with resolve(refs, app.config) as secrets:
        redactor = Redactor(redactables(secrets), os.fsencode(replacement))
    try:
        _pump(0, 1, redactor)
    except BrokenPipeError:
        pass  # the reader left (`| head`): nothing more to show


def _pump(fd_in: int, fd_out: int, redactor: Redactor) -> None:
    """Filter ``fd_in`` to ``fd_out`` until end of input, flushing after ``IDLE``."""
    while True:
        timeout = IDLE if redactor.held else None
        ready, _, _ = select.select([fd_in], [], [], timeout)
        if not ready:
            _write_all(fd_out, redactor.flush())
            continue
        data = os.read(fd_in, CHUNK)
        if not data:
            break
        _write_all(fd_out, redactor.write(data))
    _write_all(fd_out, redactor.flush())


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
