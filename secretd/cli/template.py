"""``secretd template check|render``: look at a template before a run uses it.

Neither command resolves a secret or a config: ``check`` lists the names, ``render`` shows
each secret as ``<secret:NAME>`` and each config as ``<config:NAME>``. ``env("VAR")`` reads
the caller's own environment (it is theirs to see), and ``run.KEY`` shows ``<run:KEY>``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import click

from .output import echo_table

_DELIMITERS = click.option(
    "--delimiters",
    metavar="'START END'",
    help="Value delimiters for files that use {{ }} themselves, e.g. '[[ ]]'.",
)


class _RunPlaceholders(Mapping[str, str]):
    """``run.KEY`` -> ``<run:KEY>``: what a run would fill in is not known here."""

    def __getitem__(self, key: str) -> str:
        return f"<run:{key}>"

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


@click.group()
def template() -> None:
    """Check and preview config templates (never showing a secret)."""


@template.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@_DELIMITERS
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def check(file: Path, delimiters: str | None, fmt: str) -> None:
    """List the secrets, configs, environment variables and run keys FILE uses.

    Nothing is resolved. A name computed while rendering is listed as (computed), in JSON
    as null.
    """
    from ..templates import parse_delimiters, uses

    found = uses(file, delimiters=parse_delimiters(delimiters) if delimiters else None)
    if fmt == "json":
        click.echo(json.dumps([dataclasses.asdict(use) for use in found], indent=2))
        return
    rows = [(use.kind, use.name or "(computed)", str(use.line)) for use in found]
    echo_table(("KIND", "NAME", "LINE"), rows)


@template.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@_DELIMITERS
def render(file: Path, delimiters: str | None) -> None:
    """Print FILE rendered, each secret shown as <secret:NAME>, each config as <config:NAME>.

    env("VAR") reads your environment; run.KEY shows <run:KEY>.
    """
    from ..templates import parse_delimiters
    from ..templates import render as render_template

    rendered = render_template(
        file,
        secret=lambda name: f"<secret:{name}>".encode(),
        config=lambda name: f"<config:{name}>".encode(),
        env=os.environ,
        run=_RunPlaceholders(),
        delimiters=parse_delimiters(delimiters) if delimiters else None,
    )
    click.echo(rendered.data, nl=False)
