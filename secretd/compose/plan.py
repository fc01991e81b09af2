"""A compose model's ``secrets:`` and ``configs:`` as secretd references, per service.

Top level (where a value comes from):

============================  ==============================================
``file: PATH``                ``file:/abs/path`` (compose made it absolute)
``environment: VAR``          ``env:VAR``, from the variables compose
                              interpolates with (``.env`` included)
``content: TEXT`` (configs)   the text itself (it is in the model already)
``external: true`` / ``name``  the secretd name ``name``: a ``secretd.toml``
                              binding or the local store, never Docker
``x-secretd: {source: URI}``  ``URI``, winning over the fields above (which
                              plain compose keeps using)
============================  ==============================================

Service long syntax (where it lands): ``target`` relative to ``/run/secrets`` for a
secret, to ``/`` for a config (Swarm's rules), absolute anywhere; ``uid``/``gid`` as
numbers or strings; ``mode`` as compose normalises every spelling (``0400``, ``0o440``,
``"0440"`` and ``288`` all reach us as an octal string).

The default owner is Swarm's: uid 0, gid 0, mode 0444, whatever the service's ``user:``
(a file is readable by every user of the container unless a mode says otherwise).
Every mistake is a ``UsageError`` naming the service, the secret and the fix, raised
before anything is resolved, mounted or started.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import SecretdError, UsageError
from ..refs import Binding, check_target, parse_id, parse_mode, parse_ref
from ..spec import DEFAULT_MODE, DEFAULT_SECRETS_DIR, SecretRef
from .model import EXTENSION, ComposeError

log = logging.getLogger(__name__)

DEFAULT_OWNER = (0, 0)  # Swarm's
KINDS = {"secrets": "secret", "configs": "config"}
IGNORED = ("driver", "driver_opts", "labels", "template_driver")
EXTERNAL_FIELDS = frozenset({"external", "name", EXTENSION})


@dataclass(frozen=True)
class Source:
    """Where one top-level secret or config comes from: a secretd reference, or the
    ``content`` of a config (``ref.source == "content:"``, value in ``content``)."""

    kind: str  # "secret" | "config"
    name: str  # the compose key
    ref: SecretRef  # target, uid, gid, mode unset here: each use sets its own
    origin: str  # "file", "environment", "content", "external", "x-secretd"
    content: bytes | None = field(default=None, repr=False)

    @property
    def shown(self) -> str:
        return "(inline content)" if self.content is not None else self.ref.source


@dataclass(frozen=True)
class Use:
    """One entry of a service's ``secrets:``/``configs:``: a source at a target."""

    service: str
    source: Source
    target: str  # absolute, in the container
    uid: int
    gid: int
    mode: int
    default_owner: bool = False  # neither uid nor gid given: Swarm's 0:0

    @property
    def owner(self) -> str:
        return f"{self.uid}:{self.gid}" + (" (default)" if self.default_owner else "")

    def ref(self) -> SecretRef:
        """The reference the broker and the mount take (relative under /run/secrets)."""
        prefix = DEFAULT_SECRETS_DIR + "/"
        inside = self.target.removeprefix(prefix) if self.source.kind == "secret" else self.target
        return SecretRef(
            self.source.name, self.source.ref.source, inside, self.uid, self.gid, self.mode,
            self.source.kind,
        )  # fmt: skip


@dataclass(frozen=True)
class Plan:
    """What secretd will do for a project: every service's uses, and warnings given."""

    project: str
    sources: Mapping[tuple[str, str], Source]
    services: Mapping[str, tuple[Use, ...]]
    warnings: tuple[str, ...] = ()


def _what(kind: str, name: str, service: str | None = None) -> str:
    where = f"service {service!r} " if service else ""
    return f"{where}{kind} {name!r}"


def make_plan(
    model: Mapping[str, Any],
    bindings: Mapping[str, Mapping[str, Binding]],
    environ: Mapping[str, str],
) -> Plan:
    """Map a model from ``model.load`` to secretd references.

    Args:
        bindings: ``{"secret": config.secrets, "config": config.configs}``.
        environ: what compose interpolates with (for ``environment:`` sources).

    Raises:
        UsageError: one line naming the service, the secret and the fix.
    """
    warnings: list[str] = []
    sources: dict[tuple[str, str], Source | UsageError] = {}
    for section, kind in KINDS.items():
        for name, entry in (model.get(section) or {}).items():
            key = (kind, name)
            try:
                sources[key] = _source(kind, name, entry, bindings[kind], environ, warnings)
            except UsageError as exc:  # said with the first service that uses it
                sources[key] = exc
    services: dict[str, tuple[Use, ...]] = {}
    for service, body in sorted((model.get("services") or {}).items()):
        uses = [
            _use(service, KINDS[section], item, sources)
            for section in KINDS
            for item in body.get(section) or []
        ]
        _check_targets(service, uses)
        if uses:
            services[service] = tuple(uses)
    for warning in warnings:
        log.warning("%s", warning)
    usable = {key: source for key, source in sources.items() if isinstance(source, Source)}
    return Plan(str(model.get("name") or ""), usable, services, tuple(warnings))


def _source(
    kind: str,
    name: str,
    entry: Mapping[str, Any],
    bindings: Mapping[str, Binding],
    environ: Mapping[str, str],
    warnings: list[str],
) -> Source:
    what = _what(kind, name)
    for key in IGNORED:
        if entry.get(key):
            warnings.append(
                f"{what}: {key} is ignored, secretd fills the files itself "
                f"(remove {key}: or keep it for a swarm)"
            )
    extension = entry.get(EXTENSION)
    if extension is not None:
        uri = extension.get("source") if isinstance(extension, Mapping) else None
        if not isinstance(uri, str) or ":" not in uri:
            raise UsageError(
                f"{what}: {EXTENSION} needs a source URI",
                f'write {EXTENSION}: {{source: "vault:secret/app#key"}}',
            )
        return Source(kind, name, _ref(what, f"{name}={uri}", {}, kind), EXTENSION)
    if entry.get("external"):
        extra = sorted(set(entry) - EXTERNAL_FIELDS - {key for key in IGNORED if entry.get(key)})
        if extra:
            raise UsageError(
                f"{what} is external and also has {', '.join(extra)}",
                "an external secret takes only name: (its secretd name); remove the others",
            )
        secretd_name = str(entry.get("name") or name)
        return Source(kind, name, _ref(what, secretd_name, bindings, kind), "external")
    if "file" in entry:
        return Source(kind, name, _ref(what, f"{name}=file:{entry['file']}", {}, kind), "file")
    if "environment" in entry:
        variable = str(entry["environment"])
        if variable not in environ:
            raise UsageError(
                f"{what}: environment variable {variable} is not set",
                f"export {variable}, or set it in the project's .env file",
            )
        return Source(kind, name, _ref(what, f"{name}=env:{variable}", {}, kind), "environment")
    if kind == "config" and "content" in entry:
        ref = SecretRef(name, "content:", name, kind=kind)
        return Source(kind, name, ref, "content", str(entry["content"]).encode())
    raise UsageError(
        f"{what} has no source",
        "give it file:, environment:, external: true or x-secretd: {source: URI}",
    )


def _ref(what: str, text: str, bindings: Mapping[str, Binding], kind: str) -> SecretRef:
    try:
        return parse_ref(text, bindings, kind)
    except UsageError as exc:
        raise UsageError(f"{what}: {exc.message}", exc.hint) from None


def _use(
    service: str, kind: str, item: Any, sources: Mapping[tuple[str, str], Source | UsageError]
) -> Use:
    if isinstance(item, str):
        item = {"source": item}
    name = str(item.get("source", ""))
    what = _what(kind, name, service)
    source = sources.get((kind, name))
    if source is None:
        raise UsageError(f"{what} is not defined", f"add {name}: to the top-level {kind}s:")
    if isinstance(source, UsageError):
        raise UsageError(f"service {service!r}: {source.message}", source.hint)
    target = str(item.get("target") or name)
    base = DEFAULT_SECRETS_DIR if kind == "secret" else "/"
    target = posixpath.join(base, target)
    try:
        check_target(target, f"{kind} {name}")
        uid = parse_id(item["uid"], "uid", str(item["uid"])) if "uid" in item else None
        gid = parse_id(item["gid"], "gid", str(item["gid"])) if "gid" in item else None
        mode = parse_mode(item["mode"], str(item["mode"])) if "mode" in item else None
    except UsageError as exc:
        raise UsageError(f"{what}: {exc.message}", exc.hint) from None
    return Use(
        service, source, target,
        DEFAULT_OWNER[0] if uid is None else uid,
        DEFAULT_OWNER[1] if gid is None else gid,
        DEFAULT_MODE if mode is None else mode,
        uid is None and gid is None,
    )  # fmt: skip


def _check_targets(service: str, uses: list[Use]) -> None:
    seen: dict[str, Use] = {}
    for use in uses:
        for path, other in seen.items():
            if use.target == path or use.target.startswith(path + "/") or path.startswith(
                use.target + "/"
            ):
                raise UsageError(
                    f"service {service!r}: {other.source.kind} {other.source.name!r} and "
                    f"{use.source.kind} {use.source.name!r} both target {use.target!r}",
                    "give one of them another target:",
                )
        seen[use.target] = use


def in_service(service: str, kind: str, name: str, exc: SecretdError) -> SecretdError:
    """``exc`` as one line that also names the service (and the secret, unless the
    provider's message already does); a usage error stays one (2), any other is 125."""
    message = exc.message if repr(name) in exc.message else f"{kind} {name!r}: {exc.message}"
    line = f"service {service!r}: {message}"
    return UsageError(line, exc.hint) if exc.exit_code == 2 else ComposeError(line, exc.hint)
