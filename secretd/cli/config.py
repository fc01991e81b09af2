"""``secretd config``: configuration files in the local store, shaped like ``docker config``.

Configs are kept apart from secrets (a table of their own) and cannot change once made,
as Docker's cannot. Unlike a secret, a config's content is shown on request (``inspect
--pretty``, as ``docker config inspect --pretty`` does): a value that must stay hidden
belongs in a secret, rendered into the file with ``--template``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import click

from ..errors import SecretNotFound
from ..exposure import config_warning
from ..refs import check_name
from ..store import ConfigInfo, LocalStore
from . import AppContext
from .output import echo_table
from .secret import parse_labels, read_value

HEADER = ("NAME", "CREATED", "LABELS")


def _store(app: AppContext) -> LocalStore:
    return LocalStore.from_config(app.config)


def inspect_json(info: ConfigInfo) -> dict[str, Any]:
    """Metadata in the shape of ``docker config inspect``."""
    return {
        "ID": info.id,
        "CreatedAt": info.created_at,
        "Spec": {"Name": info.name, "Labels": dict(info.labels)},
    }


def _for_each(names: Iterable[str], action: Callable[[str], None]) -> None:
    """Apply ``action`` to every name, then report the missing ones in one line."""
    missing = []
    for name in [check_name(name, "config name") for name in names]:
        try:
            action(name)
        except SecretNotFound:
            missing.append(name)
    if missing:
        raise SecretNotFound(
            f"config{'s' * (len(missing) > 1)} {', '.join(map(repr, missing))} not found in "
            "the local store",
            "see 'secretd config ls'",
        )


@click.group()
def config() -> None:
    """Manage configs in the local store (shaped like 'docker config')."""


@config.command()
@click.argument("name")
@click.argument("file", required=False, metavar="[FILE|-]")
@click.option("-l", "--label", "labels", multiple=True, metavar="KEY=VALUE", help="Add a label.")
@click.pass_obj
def create(app: AppContext, name: str, file: str | None, labels: tuple[str, ...]) -> None:
    """Create config NAME from FILE or stdin; mount it with 'run --config NAME'.

    \b
    secretd config create nginx.conf ./nginx.conf
    """
    check_name(name, "config name")
    parsed = parse_labels(labels)
    content = read_value(file, name)
    warning = config_warning(name, content)
    if warning:
        click.echo(f"secretd: warning: {warning}", err=True)
    click.echo(_store(app).create_config(name, content, parsed).name)


@config.command("ls")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.option("-q", "--quiet", is_flag=True, help="Only print names.")
@click.pass_obj
def list_(app: AppContext, fmt: str, quiet: bool) -> None:
    """List configs: names, times and labels."""
    configs = _store(app).list_configs()
    if quiet:
        for info in configs:
            click.echo(info.name)
    elif fmt == "json":
        click.echo(json.dumps([inspect_json(info) for info in configs], indent=2))
    else:
        rows = (
            (
                info.name,
                info.created_at[:19] + "Z",
                ",".join(f"{key}={value}" for key, value in sorted(info.labels.items())),
            )
            for info in configs
        )
        echo_table(HEADER, rows)


@config.command()
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@click.option("--pretty", is_flag=True, help="Show each config readably, with its content.")
@click.pass_obj
def inspect(app: AppContext, names: tuple[str, ...], pretty: bool) -> None:
    """Show configs as JSON like 'docker config inspect'; --pretty adds the content."""
    store, found = _store(app), []

    def show(name: str) -> None:
        info = store.inspect_config(name)
        if not pretty:
            found.append(inspect_json(info))
            return
        labels = ", ".join(f"{key}={value}" for key, value in sorted(info.labels.items()))
        content = store.read_config(name).decode("utf-8", errors="replace")
        click.echo(f"ID:\t\t{info.id}\nName:\t\t{info.name}")
        if labels:
            click.echo(f"Labels:\t\t{labels}")
        click.echo(f"Created at:\t{info.created_at}\nData:\n{content}")

    try:
        _for_each(names, show)
    finally:
        if found:
            click.echo(json.dumps(found, indent=4))


@config.command()
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@click.pass_obj
def rm(app: AppContext, names: tuple[str, ...]) -> None:
    """Remove configs."""
    store = _store(app)

    def remove(name: str) -> None:
        store.remove_config(name)
        click.echo(name)

    _for_each(names, remove)
