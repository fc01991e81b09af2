"""Printing for the listing commands: aligned columns, as the docker CLI prints them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import click

from ..errors import printable


def echo_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """One line per row, whatever the cells hold: control characters are escaped (``\\x0a``),
    since names, labels and commands come from callers, images and stores."""
    table = [tuple(header), *(tuple(printable(cell) for cell in row) for row in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        click.echo("   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
