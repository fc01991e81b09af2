"""``secretd compose``: Docker Compose with Swarm's /run/secrets (docs/compose.md)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ..errors import LikeDockerRun
from . import AppContext
from .output import echo_table

if TYPE_CHECKING:
    from ..compose.project import Project

T = TypeVar("T")
PROJECT = "secretd.compose.project"  # the group's options, in ctx.meta for its commands
PASSED = {"allow_extra_args": True, "ignore_unknown_options": True}
ARGS = click.argument("args", nargs=-1, type=click.UNPROCESSED)


@click.group()
@click.option("-f", "--file", "files", multiple=True, metavar="FILE", help="Compose file.")
@click.option("-p", "--project-name", "name", metavar="NAME", help="Project name.")
@click.option("--project-directory", metavar="DIR", help="Project directory.")
@click.option("--profile", "profiles", multiple=True, metavar="PROFILE", help="Enable a profile.")
@click.option("--env-file", "env_files", multiple=True, metavar="FILE", help="Variables file.")
@click.pass_context
def compose(ctx: click.Context, /, files: tuple[str, ...], name: str | None, **opts: Any) -> None:
    """Run a compose project with in-memory secrets and configs at Swarm's paths.

    Docker Compose v2 reads the files and runs the containers; secretd resolves each
    service's secrets: and configs: first and binds them from a tmpfs, read-only, with
    their uid, gid and mode. ps, logs, exec, start, stop and restart go to compose
    unchanged.
    """
    ctx.meta[PROJECT] = (files, name, opts)


def _project(ctx: click.Context) -> Project:
    """The project the group's options name; compose is looked up here, by a command
    that runs it (so ``--help`` needs none)."""
    from ..compose.model import find_compose
    from ..compose.project import Project

    files, name, opts = ctx.meta[PROJECT]
    return Project(
        tuple(find_compose()), files, name, opts["project_directory"],
        opts["profiles"], opts["env_files"],
    )  # fmt: skip


def _failing(run: Callable[[], T]) -> T:
    """secretd's own failures before compose runs exit 125 (usage errors 2)."""
    with LikeDockerRun():
        return run()


@compose.command("config")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.pass_context
def config_cmd(ctx: click.Context, fmt: str) -> None:
    """Print the plan: each service's secrets and configs, their sources, targets,
    owners (default 0:0, Swarm's) and modes. Never a value."""
    from ..compose.project import describe, load_project

    app: AppContext = ctx.obj
    loaded = _failing(lambda: load_project(_project(ctx), app.config))
    rows = describe(loaded.plan)
    header = ("SERVICE", "KIND", "NAME", "SOURCE", "TARGET", "OWNER", "MODE")
    if fmt == "json":
        keys = [h.lower() for h in header]
        click.echo(json.dumps([dict(zip(keys, row, strict=True)) for row in rows], indent=2))
    else:
        echo_table(header, rows)


def _launching(name: str, doc: str) -> click.Command:
    @click.pass_context
    def command(ctx: click.Context, args: tuple[str, ...]) -> None:
        from ..compose.project import launch

        app: AppContext = ctx.obj
        sys.exit(_failing(lambda: launch(_project(ctx), app.config, [name, *args])))

    command.__doc__ = doc
    return compose.command(name, context_settings=PASSED)(ARGS(command))


def _passing(name: str, doc: str) -> click.Command:
    @click.pass_context
    def command(ctx: click.Context, args: tuple[str, ...]) -> None:
        from ..compose.project import passthrough

        sys.exit(_failing(lambda: passthrough(_project(ctx), [name, *args])))

    command.__doc__ = doc
    return compose.command(name, context_settings=PASSED)(ARGS(command))


_launching("up", "Resolve and mount every service's secrets, then 'docker compose up'.")
_launching("run", "Resolve and mount, then 'docker compose run' a one-off container.")
_passing("ps", "'docker compose ps'.")
_passing("logs", "'docker compose logs'.")
_passing("exec", "'docker compose exec'.")
_passing("start", "'docker compose start' (the containers keep their binds).")
_passing("stop", "'docker compose stop' (the tmpfs stays for a later start).")
_passing("restart", "'docker compose restart'.")


@compose.command("down", context_settings=PASSED)
@ARGS
@click.pass_context
def down_cmd(ctx: click.Context, args: tuple[str, ...]) -> None:
    """'docker compose down', then remove the tmpfs of every container it removed."""
    from ..compose.project import down

    app: AppContext = ctx.obj
    sys.exit(_failing(lambda: down(_project(ctx), app.config, list(args))))
