"""Printing for the listing commands: aligned columns, as the docker CLI prints them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import click


def echo_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    table = [tuple(header), *(tuple(row) for row in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        click.echo("   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
