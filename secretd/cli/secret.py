"""``secretd secret`` and ``secretd store``: administration of the encrypted local store."""

from __future__ import annotations

import click


@click.group()
def secret() -> None:
    """Manage secrets in the encrypted local store (shaped like 'docker secret')."""


@click.group()
def store() -> None:
    """Initialise or re-key the encrypted local store."""
