"""``secretd swarm push|rotate|prune`` and ``secretd stack deploy``: secretd's values as
Swarm secrets, one immutable version per value (swarmsync.py, runtime/swarm.py,
docs/swarm.md)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

from ..errors import LikeDockerRun, SecretdError, printable
from ..refs import check_name
from . import AppContext

if TYPE_CHECKING:
    from ..runtime.swarm import Step
    from ..swarmsync import SwarmSync

DRY_RUN = click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")


@click.group()
def swarm() -> None:
    """Swarm secrets from secretd's values: versions named NAME_<sha256 prefix>, labelled
    io.secretd.source=NAME and io.secretd.managed=true. Secrets without that label are
    never changed or removed."""


@swarm.command()
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@DRY_RUN
@click.pass_obj
def push(app: AppContext, names: tuple[str, ...], dry_run: bool) -> None:
    """Create a Swarm secret for each NAME's current value, unless Swarm has it already.

    NAME is resolved as 'secretd run --secret NAME' resolves it (secretd.toml, else the
    local store); NAME=SCHEME:LOCATOR binds it on the spot.
    """
    with _sync(app) as sync:
        _carry_out(sync, sync.push(names), dry_run)


@swarm.command()
@click.argument("services", nargs=-1, required=True, metavar="SERVICE...")
@click.option("--secret", "only", metavar="NAME", help="Rotate only this secret.")
@DRY_RUN
@click.pass_obj
def rotate(app: AppContext, services: tuple[str, ...], only: str | None, dry_run: bool) -> None:
    """Move each SERVICE to the version of its secrets that secretd holds now (pushed
    first if Swarm lacks it), keeping each file's target, uid, gid and mode."""
    if only is not None:
        check_name(only)
    with _sync(app) as sync:
        _carry_out(sync, sync.rotate(services, only), dry_run)


@swarm.command()
@click.option(
    "--keep",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="Versions of each name kept even when unused, newest first.",
)
@DRY_RUN
@click.pass_obj
def prune(app: AppContext, keep: int, dry_run: bool) -> None:
    """Remove the versions secretd manages that no service uses."""
    with _sync(app) as sync:
        _carry_out(sync, sync.prune(keep), dry_run)


@click.group()
def stack() -> None:
    """Swarm stacks whose secrets come from secretd (docker stack deploy underneath)."""


@stack.command()
@click.option(
    "-c",
    "--compose-file",
    "files",
    multiple=True,
    required=True,
    metavar="FILE",
    help="Compose file (repeat to merge, as docker compose -f does).",
)
@click.option("--prune", is_flag=True, help="Passed to docker stack deploy.")
@click.option("--with-registry-auth", is_flag=True, help="Passed to docker stack deploy.")
@click.option(
    "--resolve-image",
    type=click.Choice(["always", "changed", "never"]),
    help="Passed to docker stack deploy.",
)
@DRY_RUN
@click.argument("name", metavar="STACK")
@click.pass_obj
def deploy(
    app: AppContext,
    files: tuple[str, ...],
    name: str,
    dry_run: bool,
    prune: bool,
    with_registry_auth: bool,
    resolve_image: str | None,
) -> None:
    """Push the compose file's secrets as Swarm versions, point the stack at them, and
    run 'docker stack deploy' with that file (on stdin: names only, never values). If it
    fails, the versions this run pushed are removed again (those no service uses)."""
    import shlex

    from ..runtime.stack import deploy as deploy_stack

    options = ["--prune"] * prune + ["--with-registry-auth"] * with_registry_auth
    options += ["--resolve-image", resolve_image] if resolve_image else []
    with _sync(app) as sync:
        plan = sync.stack(files, name, options)
        done: list[Step] = []
        try:
            _carry_out(sync, plan.steps, dry_run, done)
            verb = "would use" if dry_run else "use"
            for key, versioned in sorted(plan.versions.items()):
                click.echo(printable(f"{verb}: secret {key} as {versioned}"))
            if dry_run:
                click.echo(printable(f"would run: {shlex.join(plan.argv)}"))
                return
            deploy_stack(plan.model, plan.argv, plan.cwd)
        except BaseException as failure:
            _take_back(sync, done, failure)
            raise


def _carry_out(
    sync: SwarmSync, steps: Sequence[Step], dry_run: bool, done: list[Step] | None = None
) -> None:
    """Print each step; without ``dry_run``, after doing it (and adding it to ``done``)."""
    if not steps:
        click.echo("nothing to do")
    for step in steps:
        carried = step if dry_run else sync.apply(step)
        if done is not None and not dry_run:
            done.append(carried)
        click.echo(printable(carried.line(dry_run)))


def _take_back(sync: SwarmSync, done: Sequence[Step], failure: BaseException) -> None:
    """Remove the versions ``done`` created that no service uses, after ``failure``; if
    that fails too, ``failure``'s line says what stays and how to remove it."""
    try:
        for step in sync.undo(done):
            click.echo(printable(sync.apply(step).line()))
    except SecretdError as exc:
        if isinstance(failure, SecretdError):
            stays = (
                f"the versions it pushed stay ({exc.message}); 'secretd swarm prune' removes them"
            )
            failure.hint = f"{failure.hint}; {stays}" if failure.hint else stays


@contextmanager
def _sync(app: AppContext) -> Iterator[SwarmSync]:
    """A manager to talk to (refused early when it is not one), closed at the end; a
    failure of secretd's own exits 125, as ``secretd run`` does."""
    from ..swarmsync import SwarmSync

    with LikeDockerRun(), SwarmSync(app.config) as sync:
        yield sync
