"""``secretd container ls|logs|stop|rm|prune``: the containers of the integrated oci runtime.

``logs``, ``stop``, ``rm`` and ``prune`` are also top-level commands, as in Docker; the
listing is ``secretd container ls`` (top-level ``secretd ps`` lists the daemon's runs).
"""

from __future__ import annotations

import shutil
import sys
import time

import click

from ..errors import UsageError
from . import AppContext


@click.command()
@click.option("-a", "--all", "show_all", is_flag=True, help="Also stopped containers.")
@click.option("-q", "--quiet", is_flag=True, help="Only ids.")
@click.pass_obj
def ps(app: AppContext, show_all: bool, quiet: bool) -> None:
    """List oci containers, with the NAMES of the secrets each holds (never values)."""
    from ..runtime.ocistate import records, summary

    now = time.time()
    rows = [summary(record, now) for _, record in records(app.config)]
    rows = [r for r in rows if show_all or r["state"] != "exited"]
    if quiet:
        for row in rows:
            click.echo(row["id"])
        return
    keys = ("id", "image", "command", "created", "status", "secrets", "name")
    table: list[tuple[str, ...]] = [
        ("CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "SECRETS", "NAMES")
    ]
    table += [tuple(_short(str(row[k]), k) for k in keys) for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(keys))]
    for line in table:
        click.echo("   ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())


def _short(text: str, key: str) -> str:
    return f'"{text[:20]}…"' if key == "command" and len(text) > 20 else (
        f'"{text}"' if key == "command" else text)


@click.command()
@click.argument("container")
@click.pass_obj
def logs(app: AppContext, container: str) -> None:
    """Print what a detached container wrote: stdout to stdout, stderr to stderr."""
    from ..runtime.ocistate import find

    directory, record = find(app.config, container)
    if not record.detached:
        raise UsageError(f"container {record.id[:12]} runs in the foreground",
                         "its output goes to the terminal that started it")
    for name, stream in (("stdout.log", sys.stdout.buffer), ("stderr.log", sys.stderr.buffer)):
        try:
            with (directory / name).open("rb") as fh:
                shutil.copyfileobj(fh, stream)
        except FileNotFoundError:
            continue
        stream.flush()


@click.command()
@click.option("-t", "--time", "timeout", default=10.0, show_default=True,
              help="Seconds to wait after SIGTERM before SIGKILL.")
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def stop(app: AppContext, timeout: float, containers: tuple[str, ...]) -> None:
    """Stop containers: SIGTERM, then SIGKILL after the grace period."""
    from ..runtime.ocistate import stop as stop_container

    for container in containers:
        stop_container(app.config, container, timeout)
        click.echo(container)


@click.command()
@click.option("-f", "--force", is_flag=True, help="Kill a running container first.")
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def rm(app: AppContext, force: bool, containers: tuple[str, ...]) -> None:
    """Remove stopped containers (their record and logs)."""
    from ..runtime.ocistate import remove

    for container in containers:
        remove(app.config, container, force)
        click.echo(container)


@click.command()
@click.pass_obj
def prune(app: AppContext) -> None:
    """Remove stopped containers and whatever an interrupted secretd left behind."""
    from ..runtime.ocistate import reap, records, remove

    deleted = reap(app.config)
    for _, record in records(app.config):
        if record.state() == "exited":
            remove(app.config, record.id)
            deleted.append(record.id)
    click.echo("Deleted Containers:" if deleted else "Nothing to remove")
    for container_id in deleted:
        click.echo(container_id)


@click.group()
def container() -> None:
    """Manage oci containers (shaped like 'docker container')."""


container.add_command(ps, "ls")
container.add_command(ps, "ps")
for _command in (logs, stop, rm, prune):
    container.add_command(_command)
