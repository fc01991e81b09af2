"""``vault:MOUNT/PATH#FIELD[?version=N]``: secrets from HashiCorp Vault or OpenBao.

Key/value mounts are told apart (KV v1, KV v2) by asking Vault about the mount, once per
mount, never by guessing from the path. Any other engine is addressed by its API path
(``vault:pki/issue/web?common_name=a.example.com``): the query becomes the request's
parameters and the answer's ``data`` the secret, whole (as JSON) or one ``#FIELD``.
``#FIELD1,FIELD2`` selects several fields as a directory of files, so that a certificate
and its key (issued together) are also replaced together.

Dynamic secrets carry Vault's lease: ``renew`` extends it and ``revoke`` gives it back.
Logging in, retries and error wording live in ``vault_auth``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..config import Config
from ..errors import AccessDenied, SecretNotFound, UsageError
from ..refs import split_locator
from ..spec import Secret, SecretRef
from . import BaseProvider
from ._common import content_version
from .vault_auth import LoginFailed, RequestRejected, VaultSession
from .vault_settings import VaultSettings
from .vault_shape import damaged, number, obj, text

log = logging.getLogger(__name__)

KV_TYPES = frozenset({"kv", "generic", "cubbyhole"})
# Endpoints that create something on a POST; every other path is read with a GET
# (database/creds, aws/creds, rabbitmq/creds, totp/code, ... issue on a read).
WRITE_ENDPOINTS: Mapping[str, frozenset[str]] = {
    "pki": frozenset({"issue", "sign", "sign-verbatim"}),
    "ssh": frozenset({"creds", "sign"}),
    "aws": frozenset({"sts"}),
    "kubernetes": frozenset({"creds"}),
}
# Issued secrets have no version to compare: asking again would issue a new one. Their
# renewal is driven by their lease instead.
ISSUED = "issued"


@dataclass(frozen=True)
class Mount:
    """A secrets engine mount as Vault describes it."""

    path: str  # with its trailing "/", e.g. "secret/"
    type: str
    kv_version: int  # 1 or 2 for key/value mounts, 0 for other engines


@dataclass(frozen=True)
class Target:
    """A reference, understood: the path, the fields wanted, and the mount behind it."""

    path: str
    fields: tuple[str, ...]
    query: Mapping[str, str]
    mount: Mount

    @property
    def rest(self) -> str:
        """The path inside the mount."""
        return self.path[len(self.mount.path) :]

    @property
    def subject(self) -> str:
        """How errors name it: the path the user wrote, with a pinned version."""
        version = self.query.get("version") if self.mount.kv_version == 2 else None
        return f"{self.path}?version={version}" if version else self.path


def encode(value: Any) -> bytes:
    """Strings as UTF-8; numbers, booleans, lists and objects as JSON."""
    return value.encode() if isinstance(value, str) else json.dumps(value).encode()


def select(
    target: Target, data: Mapping[str, Any], whole: bool
) -> tuple[bytes, dict[str, bytes] | None]:
    """Pick the value (or the tree of several fields) a reference asks for.

    Args:
        whole: without ``#FIELD``, return all of ``data`` as JSON (engine answers)
            instead of requiring a single-key secret (key/value secrets).

    Raises:
        SecretNotFound: a named field is missing, or the secret is empty.
        UsageError: no field named and the secret has several.
    """
    keys = ", ".join(sorted(data))
    if not target.fields:
        if whole:
            return encode(dict(data)), None
        if len(data) == 1:
            return encode(next(iter(data.values()))), None
        if not data:
            raise SecretNotFound(f"vault secret {target.subject} is empty")
        raise UsageError(
            f"vault secret {target.subject} has {len(data)} fields",
            f"name one with vault:{target.path}#FIELD; its fields are: {keys}",
        )
    for name in target.fields:
        if name not in data:
            raise SecretNotFound(
                f"vault secret {target.subject} has no field {name!r}", f"its fields are: {keys}"
            )
    if len(target.fields) == 1:
        return encode(data[target.fields[0]]), None
    return b"", {name: encode(data[name]) for name in target.fields}


def _read_mount(path: str, answer: Mapping[str, Any]) -> Mount:
    """The mount Vault says holds ``path``; one that does not hold it is a damaged answer
    (it would be remembered for other paths)."""
    data = obj(answer.get("data"), "data", path)
    kind = text(data.get("type"), "data.type", path)
    prefix = text(data.get("path"), "data.path", path)
    if not prefix.endswith("/") or not f"{path}/".startswith(prefix):
        raise damaged(path, "data.path", f"a mount holding {path}")
    kv_version = 0
    if kind in KV_TYPES:
        options = obj(data.get("options") or {}, "data.options", path)
        kv_version = number(options.get("version") or 1, "data.options.version", path)
        if kv_version not in (1, 2):
            raise damaged(path, "data.options.version", "1 or 2")
    return Mount(path=prefix, type=kind, kv_version=kv_version)


class VaultProvider(BaseProvider):
    """Reads key/value secrets and issues dynamic ones through one ``VaultSession``.

    Args:
        settings: see ``VaultSettings`` (``[providers.vault]`` and ``VAULT_*``).
        client: an ``hvac.Client`` to use instead of building one (tests).
    """

    scheme = "vault"

    def __init__(self, settings: VaultSettings, client: Any = None) -> None:
        self.session = VaultSession(settings, client)
        self._mounts: dict[str, Mount] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, config: Config) -> VaultProvider:
        return cls(VaultSettings.load(config.provider("vault"), os.environ))

    def get(self, ref: SecretRef) -> Secret:
        target = self._target(ref)
        if target.mount.kv_version == 2:
            data, version = self._read_kv2(target)
        elif target.mount.kv_version == 1:
            answer = self.session.call("GET", target.path, target.subject)
            data = obj(answer.get("data"), "data", target.subject)
            version = content_version(json.dumps(data, sort_keys=True).encode())
        else:
            return self._issue(ref, target)
        value, tree = select(target, data, whole=False)
        return Secret(name=ref.name, version=version, value=value, tree=tree)

    def version(self, ref: SecretRef) -> str:
        """KV v2: the version number (a pinned one without asking); KV v1: a hash of the
        secret; other engines: a constant, since asking would issue a new secret."""
        target = self._target(ref)
        if target.mount.kv_version == 2:
            return target.query.get("version") or self._read_kv2(target)[1]
        if target.mount.kv_version == 1:
            return self.get(ref).version
        return ISSUED

    def renew(self, secret: Secret) -> Secret | None:
        """Extend the lease by its original duration.

        Returns ``None`` when Vault refuses (expired, revoked, not renewable) or can no
        longer extend it by that much (its max TTL is near), so that the caller issues a
        fresh secret while the old one still works.

        Raises:
            ProviderError: Vault is unreachable or failed.
        """
        if secret.lease_id is None:
            return secret
        if not secret.renewable:
            return None
        try:
            answer = self.session.call(
                "PUT",
                "sys/leases/renew",
                f"the lease of {secret.name}",
                body={"lease_id": secret.lease_id, "increment": secret.lease_duration},
            )
        except (RequestRejected, AccessDenied, SecretNotFound) as exc:
            log.info("vault: renewal of %s refused (%s)", secret.name, exc.message)
            return None
        duration = number(
            answer.get("lease_duration"), "lease_duration", f"the lease of {secret.name}"
        )
        if duration < secret.lease_duration:
            log.info("vault: lease of %s is near its max TTL (%ss left)", secret.name, duration)
            return None
        log.debug("vault: lease of %s renewed for %ss", secret.name, duration)
        return dataclasses.replace(
            secret, lease_duration=duration, renewable=bool(answer.get("renewable"))
        )

    def revoke(self, secret: Secret) -> None:
        """Give the lease back now (Vault answers success for one already gone)."""
        if secret.lease_id is None:
            return
        self.session.call(
            "PUT", "sys/leases/revoke", f"the lease of {secret.name}",
            body={"lease_id": secret.lease_id},
        )  # fmt: skip
        log.debug("vault: lease of %s revoked", secret.name)

    def _target(self, ref: SecretRef) -> Target:
        """Parse the reference and find its mount.

        Raises:
            UsageError: no path, a bad field list, or a query the mount does not take.
        """
        loc = split_locator(ref.locator)
        path = loc.path.strip("/")
        if not path:
            raise UsageError(
                f"secret {ref.name!r}: {ref.source!r} names no path",
                "write vault:MOUNT/PATH#FIELD",
            )
        fields = tuple(loc.fragment.split(",")) if loc.fragment else ()
        for name in fields:
            if not name or "/" in name or (len(fields) > 1 and name.startswith(".")):
                raise UsageError(
                    f"secret {ref.name!r}: bad field list {loc.fragment!r}",
                    "write #FIELD or #FIELD1,FIELD2 (fields become file names)",
                )
        target = Target(path=path, fields=fields, query=loc.query, mount=self._mount(path))
        if target.mount.kv_version:
            self._check_kv(ref, target)
        return target

    def _check_kv(self, ref: SecretRef, target: Target) -> None:
        kv = target.mount.kv_version
        unknown = sorted(set(target.query) - ({"version"} if kv == 2 else set()))
        if unknown:
            raise UsageError(
                f"secret {ref.name!r}: {unknown[0]!r} is not an option of the KV v{kv} "
                f"mount {target.mount.path}",
                "KV v1 keeps no versions" if kv == 1 else "KV v2 takes only ?version=N",
            )
        version = target.query.get("version")
        if version is not None and not (version.isdigit() and int(version) > 0):
            raise UsageError(f"secret {ref.name!r}: version {version!r} is not a positive number")
        if not target.rest:
            raise UsageError(
                f"secret {ref.name!r}: {target.path} is a mount, not a secret",
                f"write vault:{target.mount.path}PATH#FIELD",
            )

    def _mount(self, path: str) -> Mount:
        """The mount behind ``path``: asked once, then remembered."""
        with self._lock:
            for prefix, mount in self._mounts.items():
                if f"{path}/".startswith(prefix):
                    return mount
        try:
            answer = self.session.call("GET", f"sys/internal/ui/mounts/{path}", path)
        except LoginFailed:
            raise
        except AccessDenied as exc:
            raise AccessDenied(
                exc.message,
                "no secrets engine is mounted there, or no policy of this identity grants "
                "access to it",
            ) from None
        mount = _read_mount(path, answer)
        log.debug(
            "vault: %s is a %s mount (KV version %s)",
            mount.path,
            mount.type,
            mount.kv_version or "-",
        )
        with self._lock:
            self._mounts[mount.path] = mount
        return mount

    def _read_kv2(self, target: Target) -> tuple[Mapping[str, Any], str]:
        path = f"{target.mount.path}data/{target.rest}"
        subject = target.subject
        answer = self.session.call("GET", path, subject, params=target.query or None)
        data = obj(answer.get("data"), "data", subject)
        if data.get("data") is None:  # a deleted or destroyed version
            raise SecretNotFound(f"vault has nothing at {subject}", "the version was deleted")
        metadata = obj(data.get("metadata"), "data.metadata", subject)
        version = number(metadata.get("version"), "data.metadata.version", subject)
        return obj(data["data"], "data.data", subject), str(version)

    def _issue(self, ref: SecretRef, target: Target) -> Secret:
        writes = target.rest.split("/", 1)[0] in WRITE_ENDPOINTS.get(target.mount.type, ())
        answer = self.session.call(
            "POST" if writes else "GET",
            target.path,
            target.subject,
            params=None if writes else (target.query or None),
            body=dict(target.query) if writes else None,
        )
        subject = target.subject
        data = obj(answer.get("data") or {}, "data", subject)
        value, tree = select(target, data, whole=True)
        lease_id = answer.get("lease_id") or None
        secret = Secret(
            name=ref.name,
            version=ISSUED,
            value=value,
            tree=tree,
            lease_id=None if lease_id is None else text(lease_id, "lease_id", subject),
            lease_duration=number(answer.get("lease_duration"), "lease_duration", subject),
            renewable=bool(answer.get("renewable")),
        )
        if secret.lease_id:
            log.debug("vault: %s issued with a %ss lease", ref.name, secret.lease_duration)
        return secret
