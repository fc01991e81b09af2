"""What a caller's run becomes in the daemon: names bound by the daemon's config, paths
read from the caller's directory, ``env:`` secrets read from the caller's environment,
and, for everyone but root, the command confined to what ``policy.py`` grants (its own
user, ``/run/secrets``, host commands only).

Apart from ``policy.py``, which only decides (who may use which secret, run as whom):
this module rewrites a ``RunSpec`` and asks the policy at each step.

``env:`` secrets need the caller's environment, which only a forwarded run brings
(``cli/forwarded.py``, the thin client's ``argv`` request): its ``env:`` secrets are read
from the variables its client sent, by a provider of that run's own
(``Authorised.providers``), never from the daemon's environment. Their values are the
caller's own, so any caller may use them, without a policy entry; ``env:VAR?file`` is
refused, since the daemon would read the file VAR names with its own rights. A
``run`` request carries no environment: its ``env:`` secrets are refused. A name the
daemon's config binds to ``env:VAR`` reads the daemon's own environment, as an
administrator chose; it cannot share a run with the caller's ``env:`` secrets.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from .backends.env import EnvProvider, file_refused
from .config import Config
from .errors import UsageError
from .policy import Peer, Policy
from .refs import check_unique_targets, expand, parse_ref, split_locator
from .spec import DEFAULT_SECRETS_DIR, RunSpec, SecretRef
from .users import resolve_user

if TYPE_CHECKING:
    from .backends import Provider


@dataclass(frozen=True)
class Bound:
    """One requested secret as the daemon binds it: ``key`` is the name policy judges
    (the ``[secrets.KEY]`` binding or store entry), ``None`` for an explicit source URI;
    ``caller``: read from the caller's own environment (an ``env:`` source it named)."""

    ref: SecretRef
    key: str | None
    caller: bool = False


class Authorised(NamedTuple):
    """A caller's run as the daemon starts it: the spec, the secret names it uses (for
    ``ps`` and the log), and the providers the run brings of its own (``Engine.
    with_providers``): the caller's environment, for its ``env:`` secrets."""

    spec: RunSpec
    keys: list[str]
    providers: dict[str, Provider]


def bind(text: str, config: Config) -> Bound:
    """Parse a ``--secret`` text with the daemon's bindings, never the client's.

    A name the client's own config binds would otherwise reach the daemon as a source
    URI chosen by the caller (``file:/etc/shadow``) and be read with the daemon's rights.

    Raises:
        UsageError: a malformed reference, or an ``env:`` source (the daemon cannot see the
            client's environment).
    """
    bare = parse_ref(text, {})
    if bare.scheme == "env":
        raise UsageError(
            f"secret {bare.name!r} comes from {bare.source}, but the daemon cannot read your "
            "environment",
            "store it (secretd secret create), bind it in the daemon's config, or use --no-daemon",
        )
    key = bare.locator if bare.scheme == "local" else None
    return Bound(parse_ref(text, config.secrets), key)


def bind_all(
    texts: Sequence[str], config: Config, environ: Mapping[str, str] | None = None
) -> list[Bound]:
    """Every ``--secret`` text as ``bind`` binds it, except that with ``environ`` (the
    caller's environment, which a forwarded run brings) ``env:`` sources are the caller's:
    a pattern stands for one secret per variable it matches there, as in-process.

    Raises:
        UsageError: as ``bind`` (an ``env:`` source without ``environ`` too); an
            ``env:VAR?file`` source; the caller's ``env:`` sources in one run with a name
            the daemon's config binds to ``env:``.
        SecretNotFound: a pattern matches none of ``environ``.
    """
    if environ is None:
        return [bind(text, config) for text in texts]
    bound: list[Bound] = []
    for text in texts:
        bare = expand(text, {}, environ)
        if bare[0].scheme != "env":
            bound.append(bind(text, config))
            continue
        for ref in bare:
            if "file" in split_locator(ref.locator).query:
                raise file_refused(ref)
        bound += [Bound(ref, None, caller=True) for ref in bare]
    daemons = [b.ref.name for b in bound if b.ref.scheme == "env" and not b.caller]
    if daemons and any(b.caller for b in bound):
        raise UsageError(
            f"secret {daemons[0]!r} comes from the daemon's environment, which a run with "
            "env: secrets of yours cannot also use",
            "run them separately, or use --no-daemon",
        )
    return bound


def authorise_run(
    policy: Policy,
    peer: Peer,
    config: Config,
    spec: RunSpec,
    texts: Sequence[str],
    cwd: str | None,
    environ: Mapping[str, str] | None = None,
) -> Authorised:
    """What a caller's run becomes.

    Superusers get their spec as sent (explicit sources read relative to their ``cwd``).
    Everyone else uses secret names only, within the policy, and ``env:`` sources of their
    own environment (``environ``, a forwarded run's), with the default secrets
    directory, as themselves (or a ``run_as`` user): the command runs in the host's user
    namespace, where setuid programs would trust any path a caller could shadow.

    Raises:
        AccessDenied: the policy refuses a secret, a user or an option.
        UsageError: a malformed reference or ``--user``; ``env:`` sources the daemon
            does not read (``bind_all``).
        SecretNotFound: an ``env:`` pattern matches none of ``environ``.
    """
    if spec.configs or spec.templates:  # the client runs these in-process
        raise UsageError(
            "the daemon does not run --config or --template yet", "use --no-daemon"
        )
    if spec.runtime == "host":  # the command would be the daemon's child, outside any namespace
        raise UsageError("the daemon runs no --no-sandbox command", "use --no-daemon")
    superuser = policy.is_superuser(peer)
    bound = bind_all(texts, config, environ)
    for item in bound:
        if item.key is None and not item.caller and not superuser:
            policy.deny(
                peer,
                item.ref.name,
                f"policy in {policy.source} lets only root use explicit sources such as "
                f"{item.ref.scheme}: (secret {item.ref.name!r})",
                "name a secret the daemon's config binds or its store holds, or use --no-daemon",
            )
    keys = [item.key or item.ref.name for item in bound]
    policy.check_secrets(peer, [k for k, b in zip(keys, bound, strict=True) if not b.caller])
    refs = tuple(_anchored(item.ref, cwd) if item.key is None else item.ref for item in bound)
    check_unique_targets(refs, spec.secrets_dir)
    workdir = os.path.join(cwd, spec.workdir or ".") if cwd else spec.workdir
    spec = dataclasses.replace(spec, secrets=refs, workdir=workdir)
    providers = _caller_providers(environ) if any(item.caller for item in bound) else {}
    return Authorised(spec if superuser else _as_caller(policy, peer, spec), keys, providers)


def _caller_providers(environ: Mapping[str, str] | None) -> dict[str, Provider]:
    """The run's own ``env`` provider: the variables its client sent, and no others."""
    return {"env": EnvProvider(dict(environ or {}), files=False)}


def _anchored(ref: SecretRef, cwd: str | None) -> SecretRef:
    if cwd and ref.scheme in ("file", "dotenv") and not ref.locator.startswith("/"):
        return dataclasses.replace(ref, source=f"{ref.scheme}:{os.path.join(cwd, ref.locator)}")
    return ref


def _as_caller(policy: Policy, peer: Peer, spec: RunSpec) -> RunSpec:
    if spec.image is not None:
        policy.deny(
            peer,
            "image",
            f"only root may run images through the daemon ({policy.source})",
            "run a host command (secretd run -- CMD) or use --no-daemon",
        )
    if spec.secrets_dir != DEFAULT_SECRETS_DIR or any(
        r.target.startswith("/") for r in spec.secrets
    ):
        policy.deny(
            peer,
            "secrets path",
            f"only root may mount secrets outside {DEFAULT_SECRETS_DIR} through the daemon "
            f"({policy.source})",
            "drop --secrets-dir and absolute targets",
        )
    user = spec.user or f"{peer.uid}:{peer.gid}"
    identity = resolve_user(user, root=True)
    group = identity.gid if ":" in user else None  # a user's own primary group is fine
    policy.check_run_as(peer, f"--user {user}", identity.uid, group)
    for ref in spec.secrets:
        if ref.uid not in (None, identity.uid) or ref.gid not in (None, identity.gid):
            policy.check_run_as(peer, f"uid/gid of secret {ref.name!r}", ref.uid, ref.gid)
    refs = tuple(_owned(ref, identity.uid, identity.gid) for ref in spec.secrets)
    return dataclasses.replace(spec, secrets=refs, user=user)


def _owned(ref: SecretRef, uid: int, gid: int) -> SecretRef:
    """Files belong to the user the command runs as by default, as in an unprivileged
    in-process run (where only that user exists)."""
    return dataclasses.replace(
        ref,
        uid=uid if ref.uid is None else ref.uid,
        gid=gid if ref.gid is None else ref.gid,
    )
