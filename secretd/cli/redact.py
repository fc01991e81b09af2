"""``secretd redact``: copy standard input to standard output with secrets masked.

``cat build.log | secretd redact --secret api_key``: the references resolve as ``run``'s
do (same grammar, same broker); the values are masked by ``secretd/redact.py``. Output
held back for a value that may continue is released after a short idle, so a prompt
without a newline still shows.
"""

from __future__ import annotations

import os

import click

from ..errors import UsageError
from . import AppContext


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
    from ..redactstream import pump

    if not refs:
        raise UsageError("nothing to redact", "name a secret with --secret REF")
    with resolve(refs, app.config) as secrets:
        redactor = Redactor(redactables(secrets), os.fsencode(replacement))
    try:
        pump(0, 1, redactor)
    except BrokenPipeError:
        pass  # the reader left (`| head`): nothing more to show
