"""secretd's values into Swarm: the plans ``secretd swarm push|rotate|prune`` and
``secretd stack deploy`` carry out, with values read through the broker.

``runtime/swarm.py`` talks to the manager and ``runtime/stack.py`` shapes a compose model
for ``docker stack deploy``; neither reads a value. This module does: it resolves names
as ``secretd run`` does (``secretd.toml``, else the local store; a compose file's secrets
as ``secretd compose`` maps them), holds the values until the plan is carried out, then
gives leases back. A leased secret is refused: Swarm would keep a copy after secretd
revokes it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .config import Config
from .errors import UsageError
from .refs import parse_ref
from .runtime.stack import check, deploy_argv, stack_model
from .runtime.swarm import Step, Swarm, check_source, versioned_name
from .spec import Secret

if TYPE_CHECKING:
    from .compose.project import Project


@dataclass(frozen=True)
class StackPlan:
    """``stack deploy``'s plan: the pushes, each compose key's version, and the command
    that reads ``model`` (names, never values) on stdin in ``cwd``."""

    steps: list[Step]
    versions: dict[str, str]
    model: str
    argv: list[str]
    cwd: str


class SwarmSync:
    """One Swarm manager (refused unless it is one) and secretd's config; a context
    manager that gives back what it resolved and closes the connection.

    Args:
        config: bindings and provider settings, as ``secretd run`` reads them.
        swarm: the manager (default: ``DOCKER_HOST`` or the current context).
    """

    def __init__(self, config: Config, swarm: Swarm | None = None) -> None:
        self.config = config
        self.swarm = swarm or Swarm()
        self._held = ExitStack()
        self._held.callback(self.swarm.close)

    def __enter__(self) -> SwarmSync:
        try:
            self.swarm.require_manager()
        except BaseException:
            self._held.close()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._held.close()

    def apply(self, step: Step) -> Step:
        """Carry out one step; what was done (runtime/swarm.py ``Swarm.apply``)."""
        return self.swarm.apply(step)

    def push(self, names: Sequence[str]) -> list[Step]:
        """Create what Swarm lacks of the values of ``names`` (``NAME`` or ``NAME=URI``).

        Raises:
            UsageError: a name does not parse or is too long; a secret is leased.
            SecretdError: a provider failed; the versioned name is taken (LaunchError).
        """
        return self.swarm.plan_push(self._resolve(names))

    def rotate(self, services: Sequence[str], only: str | None = None) -> list[Step]:
        """Move ``services`` to the versions secretd holds now (created first where Swarm
        lacks them), all their managed secrets or those of ``only``.

        Raises:
            UsageError: no such service, or one that uses no managed secret (or not ``only``).
        """
        used = self.swarm.sources(services, only)
        secrets = self._resolve(sorted({source for refs in used.values() for _, source in refs}))
        creates = [step for step in self.swarm.plan_push(secrets) if step.action == "create"]
        newest = {secret.name: versioned_name(secret.name, secret.value) for secret in secrets}
        return [*creates, *self.swarm.plan_rotate(used, newest)]

    def undo(self, done: Sequence[Step]) -> list[Step]:
        """The removals that take back what ``done`` (steps this run carried out) created,
        after a failure: each version it created that no service uses now."""
        created = [step.ident for step in done if step.action == "create"]
        return self.swarm.plan_undo(created) if created else []

    def prune(self, keep: int = 1) -> list[Step]:
        """Remove the managed versions no service uses, but the ``keep`` newest of each."""
        return self.swarm.plan_prune(keep)

    def stack(self, files: Sequence[str], name: str, options: Sequence[str] = ()) -> StackPlan:
        """Push the secrets a compose project's services use, and the ``docker stack
        deploy`` that points stack ``name`` at their versions; the model is checked by the
        stack loader first, so a file it refuses pushes nothing (and ``undo`` takes back
        the pushes of a deploy that fails later).

        Raises:
            UsageError: compose or the stack loader refuses the files; a secret is leased.
            SecretdError: a provider failed; no Docker Compose v2 (ComposeError).
        """
        from .compose.model import find_compose
        from .compose.project import Project

        project = Project(tuple(find_compose()), tuple(files), name)
        model, found = self._resolve_project(project)
        versions = {key: versioned_name(s.name, s.value) for key, s in found.items()}
        text = json.dumps(stack_model(model, versions))
        check(text, project.home())
        steps = self.swarm.plan_push(list(found.values()))
        return StackPlan(steps, versions, text, deploy_argv(name, options), project.home())

    def _resolve(self, names: Sequence[str]) -> list[Secret]:
        from ._resolve import resolve

        refs = [parse_ref(name, self.config.secrets) for name in names]
        for ref in refs:
            check_source(ref.name)
        secrets: list[Secret] = self._held.enter_context(resolve(refs, self.config))
        _no_leases(secrets)
        return secrets

    def _resolve_project(self, project: Project) -> tuple[dict[str, Any], dict[str, Secret]]:
        """The model and, by compose key, the values of the secrets its services use
        (configs go to ``docker stack deploy`` as written)."""
        from .broker import Broker
        from .compose.project import load_project, resolve

        loaded = load_project(project, self.config)
        uses = {
            service: tuple(use for use in items if use.source.kind == "secret")
            for service, items in loaded.plan.services.items()
        }
        broker = Broker(self.config, suggest=True)
        found = resolve(replace(loaded, plan=replace(loaded.plan, services=uses)), broker)
        secrets = list(found.values())
        self._held.callback(broker.release, [loaded.plan.sources[k].ref for k in found], secrets)
        _no_leases(secrets)
        return loaded.model, {key: secret for (_, key), secret in found.items()}


def _no_leases(secrets: Sequence[Secret]) -> None:
    for secret in secrets:
        if secret.lease_id is not None:
            raise UsageError(
                f"secret {secret.name!r} is leased; a Swarm secret would outlive its "
                "lease, which secretd revokes when the command ends",
                "push a secret with a static value",
            )
