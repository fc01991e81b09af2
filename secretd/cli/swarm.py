"""``secretd swarm push|rotate|prune`` and ``secretd stack deploy``: secretd's values as
Swarm secrets, one immutable version per value (runtime/swarm.py, docs/swarm.md)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import click

from ..errors import SecretdError, UsageError, printable
from ..refs import check_name
from ..spec import Secret
from . import AppContext

if TYPE_CHECKING:
    from ..runtime.swarm import Step

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
    with _session(app) as (session, held):
        secrets = session.resolve(held, names)
        session.carry_out(session.swarm.plan_push(secrets), dry_run)


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
    with _session(app) as (session, held):
        from ..runtime.swarm import versioned_name

        used = session.swarm.sources(services, only)
        sources = sorted({source for refs in used.values() for _, source in refs})
        secrets = session.resolve(held, sources)
        creates = [s for s in session.swarm.plan_push(secrets) if s.action == "create"]
        newest = {secret.name: versioned_name(secret.name, secret.value) for secret in secrets}
        session.carry_out([*creates, *session.swarm.plan_rotate(used, newest)], dry_run)


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
    with _session(app) as (session, _):
        session.carry_out(session.swarm.plan_prune(keep), dry_run)


@dataclass(frozen=True)
class _Project:
    model: dict[str, Any]
    home: str


class _Session:
    """One connection to the manager, and the values read for it."""

    def __init__(self, app: AppContext) -> None:
        from ..runtime.swarm import Swarm

        self.app = app
        self.swarm = Swarm()

    def resolve(self, held: ExitStack, names: Sequence[str]) -> list[Secret]:
        """The values of ``names`` through the broker, held until the command ends.

        Raises:
            UsageError: a name does not parse, or its secret is leased.
        """
        from .._resolve import resolve
        from ..refs import parse_ref
        from ..runtime.swarm import check_source

        refs = [parse_ref(name, self.app.config.secrets) for name in names]
        for ref in refs:
            check_source(ref.name)
        secrets: list[Secret] = held.enter_context(resolve(refs, self.app.config))
        self._no_leases(secrets)
        return secrets

    @staticmethod
    def _no_leases(secrets: Sequence[Secret]) -> None:
        for secret in secrets:
            if secret.lease_id is not None:
                raise UsageError(
                    f"secret {secret.name!r} is leased; a Swarm secret would outlive its "
                    "lease, which secretd revokes when the command ends",
                    "push a secret with a static value",
                )

    def resolve_project(
        self, held: ExitStack, files: Sequence[str], name: str
    ) -> tuple[_Project, list[str], list[Secret]]:
        """The compose model (read as project ``name``) and the secrets its services use:
        their compose keys and values, each once, held until the command ends."""
        from ..broker import Broker
        from ..compose.model import find_compose
        from ..compose.project import Project, load_project, resolve

        project = Project(tuple(find_compose()), tuple(files), name)
        loaded = load_project(project, self.app.config)
        uses = {
            service: tuple(use for use in items if use.source.kind == "secret")
            for service, items in loaded.plan.services.items()
        }
        only = replace(loaded, plan=replace(loaded.plan, services=uses))
        broker = Broker(self.app.config, suggest=True)
        found = resolve(only, broker)
        keys = [key for _, key in found]
        secrets = list(found.values())
        held.callback(broker.release, [loaded.plan.sources[k].ref for k in found], secrets)
        self._no_leases(secrets)
        return _Project(loaded.model, project.home()), keys, secrets

    def carry_out(self, steps: Sequence[Step], dry_run: bool) -> None:
        """Print each step; without ``dry_run``, after doing it."""
        if not steps:
            click.echo("nothing to do")
        for step in steps:
            done = step if dry_run else self.swarm.apply(step)
            click.echo(printable(done.line(dry_run)))


@contextmanager
def _session(app: AppContext) -> Iterator[tuple[_Session, ExitStack]]:
    """A manager to talk to (refused early when it is not one), closed at the end; a
    failure of secretd's own exits 125, as ``secretd run`` does."""
    try:
        with ExitStack() as held:
            session = _Session(app)
            held.callback(session.swarm.close)
            session.swarm.require_manager()
            yield session, held
    except SecretdError as exc:
        if exc.exit_code == 1:
            exc.exit_code = 125
        raise


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
    run 'docker stack deploy' with that file (on stdin: names only, never values)."""
    import json
    import shlex
    import sys

    from ..runtime.stack import deploy_argv

    options = ["--prune"] * prune + ["--with-registry-auth"] * with_registry_auth
    options += ["--resolve-image", resolve_image] if resolve_image else []
    argv = deploy_argv(name, options)

    with _session(app) as (session, held):
        from ..runtime.stack import check, stack_model
        from ..runtime.stack import deploy as deploy_stack
        from ..runtime.swarm import versioned_name

        project, keys, secrets = session.resolve_project(held, files, name)
        versions = {
            key: versioned_name(secret.name, secret.value)
            for key, secret in zip(keys, secrets, strict=True)
        }
        model = json.dumps(stack_model(project.model, versions))
        check(model, project.home)
        session.carry_out(session.swarm.plan_push(secrets), dry_run)
        for key, versioned in sorted(versions.items()):
            verb = "would use" if dry_run else "use"
            click.echo(printable(f"{verb}: secret {key} as {versioned}"))
        if dry_run:
            click.echo(printable(f"would run: {shlex.join(argv)}"))
            return
        status = deploy_stack(model, argv, project.home)
    sys.exit(status)
