"""``secretd ps|logs|stop|rm|prune`` (also as ``secretd container ...``): what secretd
runs, the detached containers of the integrated oci runtime and the daemon's runs.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import TYPE_CHECKING, Any

import click

from ..errors import SecretdError, UsageError, printable
from . import AppContext
from .output import echo_table

if TYPE_CHECKING:
    from ..runtime.oci.state import Record


@click.command()
@click.option("-a", "--all", "show_all", is_flag=True, help="Also stopped containers.")
@click.option("-q", "--quiet", is_flag=True, help="Only ids.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.pass_obj
def ps(app: AppContext, show_all: bool, quiet: bool, fmt: str) -> None:
    """List what secretd runs: the daemon's runs (yours, or everyone's for administrators)
    detached oci containers, and Docker and Podman containers carrying secretd's labels,
    with the NAMES of their secrets (never values)."""
    from ..runtime.engines.listing import labelled_containers
    from ..runtime.oci.state import records

    now = time.time()
    daemon = _daemon_ps(app)
    stale = daemon.get("kept", {})  # the detached containers the daemon keeps current
    rows = [dict(run, kind="run") for run in daemon.get("runs", [])]
    rows += [dict(_summary(record, now), kind="container") for _, record in records(app.config)]
    rows += [
        dict(row, kind="container", stale=stale.get(row["id"], {}))
        for row in labelled_containers(app.config.runtime_dir)
    ]
    rows = [r for r in rows if show_all or r["state"] != "exited"]
    if quiet:
        for row in rows:
            click.echo(printable(str(row["id"])))
    elif fmt == "json":
        click.echo(json.dumps(rows, indent=2))
    else:
        echo_table(
            ("ID", "NAME", "IMAGE", "COMMAND", "STATUS", "SECRETS", "USER"),
            (_row(row, now) for row in rows),
        )


def _daemon_ps(app: AppContext) -> dict[str, Any]:
    from .. import client
    from ..protocol import request

    return dict(client.call(app.config, request("ps")) or {})


def _row(row: dict[str, Any], now: float) -> tuple[str, ...]:
    if row["kind"] == "run":
        command = " ".join(map(str, row["command"]))
        up = f"Up {int(now - row['started'])} seconds" if row["state"] == "running" else "Starting"
        secrets, image, user = ",".join(map(str, row["secrets"])), "(host)", row["user"]
    else:
        command, up, secrets, image, user = (
            row["command"],
            row["status"],
            row["secrets"],
            row["image"],
            "root",
        )
    if row.get("stale"):
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(min(row["stale"].values())))
        up += f", stale since {since}"
    shown = f'"{command[:20]}…"' if len(command) > 20 else f'"{command}"'
    return tuple(
        str(cell) for cell in (row["id"], row["name"] or "", image, shown, up, secrets, user)
    )


def _summary(record: Record, now: float) -> dict[str, Any]:
    """A ``secretd container ls`` row (secret names only)."""
    state = record.state()
    ago = _ago(now - (record.finished or record.created))
    status = {
        "running": f"Up {_ago(now - record.created)}",
        "exited": f"Exited ({record.exit_code}) {ago} ago",
        "created": "Created",
        "dead": "Dead (secretd was interrupted; 'secretd prune' removes it)",
    }[state]
    return {
        "id": record.id[:12],
        "image": record.image,
        "command": " ".join(record.command),
        "created": f"{_ago(now - record.created)} ago",
        "status": status,
        "secrets": ",".join(record.secrets),
        "name": record.name,
        "state": state,
    }


def _ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    for unit, size in (("hours", 3600), ("minutes", 60)):
        if seconds >= 2 * size:
            return f"{seconds // size} {unit}"
    return f"{seconds} seconds"


def _named(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Refuse an empty id: it would match every container that has no name."""
    for ref in value if isinstance(value, tuple) else (value,):
        if not ref:
            raise UsageError(
                f"{ctx.info_name} needs the id or name of a container", "see 'secretd ps'"
            )
    return value


@click.command()
@click.argument("container", callback=_named)
@click.option(
    "--redact/--no-redact",
    default=None,
    help="Mask its secrets' values; default as run's (docs/redaction.md).",
)
@click.pass_obj
def logs(app: AppContext, container: str, redact: bool | None) -> None:
    """Print what a detached container wrote: stdout to stdout, stderr to stderr."""
    from ..redactstream import copy_file, log_redactor, redact_default
    from ..runtime.oci.state import find

    directory, record = find(app.config, container)
    if not record.detached:
        raise UsageError(
            f"container {record.id[:12]} runs in the foreground",
            "its output goes to the terminal that started it",
        )
    redactor = None
    if redact is None:
        redact = redact_default(app.config)
    if not os.isatty(1) if redact is None else redact:
        redactor = log_redactor(app.config, record.mount, record.secrets)
    sys.stdout.flush()
    for name, fd in (("stdout.log", 1), ("stderr.log", 2)):
        copy_file(directory / name, fd, redactor)


@click.command()
@click.option(
    "-t",
    "--time",
    "timeout",
    default=10.0,
    show_default=True,
    help="Seconds to wait after SIGTERM before SIGKILL.",
)
@click.argument("containers", nargs=-1, required=True, callback=_named)
@click.pass_obj
def stop(app: AppContext, timeout: float, containers: tuple[str, ...]) -> None:
    """Stop containers or daemon runs: SIGTERM, then SIGKILL after the grace period."""
    from ..runtime.oci.state import stop as stop_container

    for container in containers:
        try:
            stop_container(app.config, container, timeout)
        except UsageError:
            if not _stop_daemon_run(app, container, timeout):
                raise
        click.echo(container)


def _stop_daemon_run(app: AppContext, run: str, timeout: float) -> bool:
    """Ask the daemon to stop one of its runs; ``False`` when no daemon answers."""
    from .. import client
    from ..protocol import request

    return client.call(app.config, request("stop", id=run, timeout=timeout), None) is not None


@click.command()
@click.option("-f", "--force", is_flag=True, help="Kill a running container first.")
@click.argument("containers", nargs=-1, required=True, callback=_named)
@click.pass_obj
def rm(app: AppContext, force: bool, containers: tuple[str, ...]) -> None:
    """Remove stopped containers (their record and logs)."""
    from ..runtime.oci.state import remove

    for container in containers:
        remove(app.config, container, force)
        click.echo(container)


@click.command()
@click.pass_obj
def prune(app: AppContext) -> None:
    """Remove stopped containers, the secrets mounts of Docker and Podman containers that
    are gone, and whatever an interrupted secretd left behind."""
    from ..mount import fuse
    from ..runtime.engines.reaper import remove_orphan_mounts
    from ..runtime.oci.state import records, remove, remove_dead_containers

    deleted = remove_dead_containers(app.config)
    for _, record in records(app.config):
        if record.state() == "exited":
            remove(app.config, record.id)
            deleted.append(record.id)
    mounts = fuse.remove_dead_mounts(app.config.runtime_dir)  # FUSE mounts whose secretd died
    try:
        mounts += remove_orphan_mounts(app.config.runtime_dir)
    except SecretdError as exc:  # an engine that does not answer keeps its mounts
        click.echo(f"secretd: warning: {exc.line()}", err=True)
    if not deleted and not mounts:
        click.echo("Nothing to remove")
    for title, names in (("Deleted Containers:", deleted), ("Removed secrets mounts:", mounts)):
        if names:
            click.echo(title)
            for name in names:
                click.echo(name)


@click.group()
def container() -> None:
    """Manage oci containers (shaped like 'docker container')."""


container.add_command(ps, "ls")
container.add_command(ps, "ps")
for _command in (logs, stop, rm, prune):
    container.add_command(_command)
