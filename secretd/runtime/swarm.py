"""Swarm secrets that secretd manages: one immutable Swarm secret per value, services
swapped to the newest one, unused ones removed.

A Swarm secret cannot be changed, and its value cannot be read back, so every value gets
a secret of its own, named ``<name>_<first 12 hex of sha256(value)>`` and labelled
``io.secretd.source=<name>`` and ``io.secretd.managed=true``. The same value always makes
the same name, so pushing twice changes nothing. Which versions belong to a name is read
from the labels, never from a name prefix (``db_pw_…`` also starts with ``db_``), and
nothing without ``io.secretd.managed=true`` is ever changed or removed.

This module talks to a real Swarm manager through the Docker SDK (imported on first use)
and gets values, never fetches them: the caller resolves names through the broker.
Every operation first builds its plan (a list of ``Step``), which ``--dry-run`` prints and
``apply`` carries out.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

from ..errors import LaunchError, UsageError
from ..refs import NAME_MAX, check_name
from ..spec import Secret
from .engines.docker import DockerClient, explain
from .engines.endpoint import docker_host

if TYPE_CHECKING:
    import docker

log = logging.getLogger(__name__)

LABEL_SOURCE = "io.secretd.source"
LABEL_MANAGED = "io.secretd.managed"
HASH_CHARS = 12
SOURCE_MAX = NAME_MAX - HASH_CHARS - 1  # Swarm names are 64 characters at most
CHANGES = frozenset({"create", "update", "remove"})


def check_source(name: str) -> str:
    """``name``, if it can name Swarm versions.

    Raises:
        UsageError: ``name`` is not a valid name, or too long to carry the suffix.
    """
    check_name(name)
    if len(name) > SOURCE_MAX:
        raise UsageError(
            f"secret name {name!r} is too long for Swarm with its version suffix",
            f"use at most {SOURCE_MAX} characters (Swarm allows {NAME_MAX} in all)",
        )
    return name


def versioned_name(name: str, value: bytes) -> str:
    """``name_<first 12 hex of sha256(value)>``: a new value is a new Swarm secret.

    Raises:
        UsageError: as ``check_source``.
    """
    return f"{check_source(name)}_{hashlib.sha256(value).hexdigest()[:HASH_CHARS]}"


@dataclass(frozen=True)
class Version:
    """One Swarm secret secretd manages (its labels say so)."""

    id: str
    name: str
    source: str
    created: str


@dataclass(frozen=True)
class Ref:
    """A service's use of a secret: where the file lands and as whom."""

    secret_id: str
    secret_name: str
    target: str
    uid: str
    gid: str
    mode: int

    @classmethod
    def from_api(cls, item: Mapping[str, Any]) -> Ref:
        file = item.get("File") or {}
        return cls(
            secret_id=str(item.get("SecretID", "")),
            secret_name=str(item.get("SecretName", "")),
            target=str(file.get("Name", "")),
            uid=str(file.get("UID", "0")),
            gid=str(file.get("GID", "0")),
            mode=int(file.get("Mode", 0o444)),
        )

    def where(self) -> str:
        return f"{self.target} (uid {self.uid}, gid {self.gid}, mode {self.mode:04o})"


@dataclass(frozen=True)
class Step:
    """One change of a plan: ``create`` or ``remove`` a secret, ``update`` a service, or
    ``keep`` (nothing to do, said so the user sees why); ``apply`` answers ``kept`` for a
    removal Swarm refused because a service took the secret up after the plan was made."""

    action: str
    subject: str
    detail: str = ""
    secret: Secret | None = field(default=None, repr=False)  # the value to create
    ident: str = ""  # the secret to create, the service to update, the secret id to remove
    swaps: tuple[tuple[str, str], ...] = ()  # (old secret id, new versioned name)

    def line(self, dry_run: bool = False) -> str:
        verb = {"keep": "up to date", "kept": "kept"}.get(self.action, self.action)
        head = f"would {verb}" if dry_run and self.action in CHANGES else verb
        return f"{head}: {self.subject}" + (f" {self.detail}" if self.detail else "")


class Swarm(DockerClient):
    """A Swarm manager: ``DOCKER_HOST`` or the current context, local or remote.

    Values travel in the create request, so a plain ``tcp://`` endpoint (no TLS) is
    refused: it would send them across the network in clear text.
    """

    runtime = "swarm"

    def __init__(self, host: str | None = None, environ: Mapping[str, str] = os.environ) -> None:
        super().__init__(host or docker_host(environ))
        self._environ = environ

    def _connect(self) -> docker.APIClient:
        """A client that refuses to send values over ``tcp://`` without TLS, and checks
        the manager's certificate against DOCKER_CERT_PATH's CA."""
        import docker
        from docker.utils import kwargs_from_env

        try:
            tls = kwargs_from_env(environment=self._environ).get("tls")
        except docker.errors.TLSParameterError:
            cert_path = self._environ.get("DOCKER_CERT_PATH") or "~/.docker"
            raise UsageError(
                f"DOCKER_TLS_VERIFY is set, and {cert_path} lacks cert.pem and key.pem",
                "point DOCKER_CERT_PATH at the directory holding ca.pem, cert.pem and key.pem",
            ) from None
        if self.host.startswith(("tcp://", "http://")) and not tls:
            raise UsageError(
                f"refusing to send secret values to {self.host} without TLS",
                "set DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH, or use an ssh:// host",
            )
        kind = _own_ca_client() if tls else docker.APIClient
        with self.errors():
            return kind(
                base_url=self.host,
                version="auto",
                tls=tls or False,
                use_ssh_client=self.host.startswith("ssh://"),
            )

    @contextmanager
    def errors(self) -> Iterator[None]:
        """The SDK's exceptions as ours (``DockerClient.errors``); a certificate that does
        not verify is said as such, not as "cannot reach"."""
        with super().errors():
            try:
                yield
            except Exception as exc:
                if _failed_tls(exc):
                    raise LaunchError(
                        f"the Docker engine at {self.host} did not pass the TLS check",
                        "check that DOCKER_CERT_PATH holds the CA (ca.pem) that signed its "
                        "certificate, and your own cert.pem and key.pem",
                    ) from None
                raise

    def require_manager(self) -> None:
        """Raises LaunchError (125) unless this engine is a Swarm manager."""
        with self.errors():
            info = self.client().info().get("Swarm") or {}
        if info.get("LocalNodeState") != "active" or not info.get("ControlAvailable"):
            raise LaunchError(
                f"the Docker engine at {self.host} is not a swarm manager",
                "run 'docker swarm init', or point DOCKER_HOST at a manager",
            )

    # -- reading ---------------------------------------------------------------------

    def versions(self) -> list[Version]:
        """Every secret labelled ``io.secretd.managed=true``, oldest first."""
        with self.errors():
            found = self.client().secrets(filters={"label": f"{LABEL_MANAGED}=true"})
        versions = []
        for item in found:
            spec = item.get("Spec") or {}
            labels = spec.get("Labels") or {}
            if labels.get(LABEL_MANAGED) != "true" or not labels.get(LABEL_SOURCE):
                continue  # the filter is the engine's; the rule is ours, checked here too
            versions.append(
                Version(
                    str(item["ID"]),
                    str(spec["Name"]),
                    str(labels[LABEL_SOURCE]),
                    str(item.get("CreatedAt", "")),
                )
            )
        return sorted(versions, key=lambda v: _instant(v.created))

    def services(self) -> list[dict[str, Any]]:
        """Every service of the swarm, as the engine lists them."""
        api: Any = self.client()  # the SDK's service calls carry no types
        with self.errors():
            return list(api.services())

    def service(self, name: str) -> dict[str, Any]:
        """One service by name or id, with defaults filled in as ``docker service update``
        reads it.

        Raises:
            UsageError: there is no such service.
        """
        import docker.errors

        api: Any = self.client()
        with self.errors():
            try:
                return dict(api.inspect_service(name, insert_defaults=True))
            except docker.errors.NotFound:
                pass
        raise UsageError(f"no swarm service {name!r}", "see 'docker service ls'")

    def _by_name(self, name: str) -> dict[str, Any] | None:
        with self.errors():
            for item in self.client().secrets(filters={"name": name}):
                if item.get("Spec", {}).get("Name") == name:
                    return dict(item)
        return None

    # -- plans -----------------------------------------------------------------------

    def plan_push(self, secrets: Sequence[Secret]) -> list[Step]:
        """A ``create`` for each value Swarm lacks, a ``keep`` for each it has.

        Raises:
            UsageError: a name is invalid or too long.
            LaunchError: a secret of that name exists that secretd does not manage.
        """
        steps: dict[str, Step] = {}
        for secret in secrets:
            name = versioned_name(secret.name, secret.value)
            if name in steps:
                continue
            existing = self._by_name(name)
            subject = f"secret {name}"
            detail = f"(from {secret.name})"
            if existing is None:
                steps[name] = Step("create", subject, detail, secret=secret, ident=name)
                continue
            labels = existing.get("Spec", {}).get("Labels") or {}
            if labels.get(LABEL_MANAGED) != "true" or labels.get(LABEL_SOURCE) != secret.name:
                raise LaunchError(
                    f"a swarm secret named {name!r} exists that secretd does not manage "
                    f"as {secret.name!r}; secretd leaves it alone",
                    f"remove or rename it yourself ('docker secret rm {name}') if it is stale",
                )
            steps[name] = Step("keep", subject, detail)
        return list(steps.values())

    def sources(
        self, services: Sequence[str], only: str | None = None
    ) -> dict[str, list[tuple[Ref, str]]]:
        """Each service's references to managed versions, with their source names (only
        those of source ``only`` when given): what a rotation may swap.

        Raises:
            UsageError: a service does not exist, uses no secret secretd manages, or does
                not use ``only``.
        """
        managed = {v.id: v for v in self.versions()}
        found = {}
        for name in dict.fromkeys(services):
            refs = self.uses(self.service(name), managed)
            if only is not None:
                refs = [(ref, source) for ref, source in refs if source == only]
            if not refs:
                what = f"secret {only!r}" if only else "any secret secretd manages"
                raise UsageError(
                    f"service {name!r} does not use {what}",
                    "add one with 'secretd swarm push NAME' and "
                    "'docker service update --secret-add NAME_<version>'",
                )
            found[name] = refs
        return found

    @staticmethod
    def plan_rotate(
        used: Mapping[str, Sequence[tuple[Ref, str]]], newest: Mapping[str, str]
    ) -> list[Step]:
        """An ``update`` for each service using an older version than ``newest`` (source
        -> versioned name) has, a ``keep`` for one already current."""
        steps = []
        for service, refs in used.items():
            stale = [
                (ref, newest[source]) for ref, source in refs if ref.secret_name != newest[source]
            ]
            if not stale:
                steps.append(Step("keep", f"service {service}"))
                continue
            detail = "; ".join(f"{ref.secret_name} -> {new} at {ref.where()}" for ref, new in stale)
            swaps = tuple((ref.secret_id, new) for ref, new in stale)
            steps.append(Step("update", f"service {service}:", detail, ident=service, swaps=swaps))
        return steps

    def plan_prune(self, keep: int) -> list[Step]:
        """A ``remove`` for each managed version no service uses, except the ``keep``
        newest of each source."""
        used = self._used()
        by_source: dict[str, list[Version]] = {}
        for version in self.versions():
            by_source.setdefault(version.source, []).append(version)
        steps = []
        for _, versions in sorted(by_source.items()):
            kept = {v.id for v in versions[max(0, len(versions) - keep) :]} if keep else set()
            steps += [_removal(v) for v in versions if v.id not in used and v.id not in kept]
        return steps

    def plan_undo(self, names: Sequence[str]) -> list[Step]:
        """A ``remove`` for each of ``names`` (the versions a failed ``stack deploy``
        created) that is still a managed version and that no service uses: one the deploy
        gave a service before it failed stays with it. Nothing else is looked at, so a
        version that existed before the run, or a secret secretd does not manage, stays."""
        wanted = set(names)
        used = self._used()
        return [_removal(v) for v in self.versions() if v.name in wanted and v.id not in used]

    def _used(self) -> set[str]:
        """The ids of the secrets any service's spec uses."""
        return {ref.secret_id for service in self.services() for ref, _ in self.uses(service, None)}

    @staticmethod
    def uses(
        service: Mapping[str, Any], managed: Mapping[str, Version] | None
    ) -> list[tuple[Ref, str]]:
        """The service's secret references, each with its managed source (``""`` when
        ``managed`` is ``None``); references to unmanaged secrets are left out then."""
        spec = service.get("Spec") or {}
        container = (spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}
        found = []
        for item in container.get("Secrets") or []:
            ref = Ref.from_api(item)
            if managed is None:
                found.append((ref, ""))
            elif ref.secret_id in managed:
                found.append((ref, managed[ref.secret_id].source))
        return found

    # -- doing -----------------------------------------------------------------------

    def apply(self, step: Step) -> Step:
        """Carry out one step of a plan (plans list creates before the updates that use
        them); what was done: the step, or a ``kept`` in place of a refused removal."""
        if step.action == "create" and step.secret is not None:
            self._create(step)
        elif step.action == "update":
            self._update(step)
        elif step.action == "remove":
            step = self._remove(step)
        log.info("%s", step.line())
        return step

    def _remove(self, step: Step) -> Step:
        """Swarm refuses to remove a secret a service uses; one a service took up since
        the plan was listed is kept, and the rest of the plan goes on."""
        import docker.errors

        with self.errors():
            try:
                self.client().remove_secret(step.ident)
            except docker.errors.APIError as exc:
                if exc.status_code != 400 or "in use" not in explain(exc):
                    raise
                return Step("kept", step.subject, f"{step.detail}: a service uses it now")
        return step

    def _create(self, step: Step) -> None:
        assert step.secret is not None
        labels = {LABEL_SOURCE: step.secret.name, LABEL_MANAGED: "true"}
        with self.errors():
            self.client().create_secret(step.ident, step.secret.value, labels=labels)

    def _update(self, step: Step) -> None:
        """``--secret-rm`` of each old version and ``--secret-add`` of the new one at the
        same target, uid, gid and mode: the service's spec with those references swapped,
        sent with the version it was read at (a concurrent change fails, not lost)."""
        current = self.service(step.ident)
        spec = current["Spec"]
        new_ids = {}
        for _, name in step.swaps:
            found = self._by_name(name)
            if found is None:
                raise LaunchError(f"swarm secret {name!r} is gone", "push it again")
            new_ids[name] = str(found["ID"])
        swap = dict(step.swaps)
        container = spec["TaskTemplate"]["ContainerSpec"]
        for item in container.get("Secrets") or []:
            new_name = swap.get(item.get("SecretID", ""))
            if new_name is not None:
                item["SecretID"], item["SecretName"] = new_ids[new_name], new_name
        with self.errors():
            self.client().update_service(
                current["ID"],
                current["Version"]["Index"],
                task_template=spec["TaskTemplate"],
                name=spec.get("Name"),
                labels=spec.get("Labels"),
                mode=spec.get("Mode"),
                update_config=spec.get("UpdateConfig"),
                rollback_config=spec.get("RollbackConfig"),
                endpoint_spec=spec.get("EndpointSpec"),
            )


def _removal(version: Version) -> Step:
    return Step("remove", f"secret {version.name}", f"(from {version.source})", ident=version.id)


def _instant(stamp: str) -> str:
    """A ``CreatedAt`` that sorts as the time it names: Go drops trailing zeros from the
    fraction, so ``…47.3351942Z`` (earlier) sorts after ``…47.33519425Z`` as text."""
    head, _, fraction = stamp.removesuffix("Z").partition(".")
    return f"{head}.{fraction.ljust(9, '0')}"


@cache
def _own_ca_client() -> type[docker.APIClient]:
    """An ``APIClient`` that checks the manager's certificate against DOCKER_CERT_PATH's
    CA alone: requests otherwise lets ``REQUESTS_CA_BUNDLE`` (or ``CURL_CA_BUNDLE``)
    replace a session's own CA (psf/requests#3829), and the manager's certificate, signed
    by the swarm's own CA, fails to verify."""
    import docker

    class OwnCAClient(docker.APIClient):
        # requests.Session.__init__ sets trust_env; a property keeps it off from the start
        trust_env = property(lambda self: False, lambda self, value: None)

    return OwnCAClient


def _failed_tls(exc: BaseException) -> bool:
    """Whether a TLS handshake failed somewhere under ``exc`` (the SDK wraps requests'
    SSLError, which wraps urllib3's, which wraps the ``ssl`` module's)."""
    import ssl

    import requests.exceptions

    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLError | requests.exceptions.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
