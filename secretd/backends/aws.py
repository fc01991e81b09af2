"""``aws:SECRET_ID[#JSON_KEY][?stage=..&version_id=..]``: AWS Secrets Manager.

ECS's own reference form, ``aws:arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME:JSON_KEY:
STAGE:VERSION_ID``, is accepted as is, so task definitions translate one to one.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..config import Config
from ..errors import SecretNotFound, UsageError
from ..refs import split_locator
from ..spec import Secret, SecretRef
from . import BaseProvider
from ._aws import (
    ACCESS_CODES,
    AwsClients,
    AwsSettings,
    Call,
    Service,
    aws_errors,
    client_code,
    expect,
)

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

log = logging.getLogger(__name__)

# A server without BatchGetSecretValue (or a policy without its permission) answers with
# one of these; the provider then fetches one secret at a time.
BATCH_UNSUPPORTED = frozenset(
    {"UnknownOperationException", "InvalidAction", "NotImplemented", *ACCESS_CODES}
)
BATCH_SIZE = 20
ARN_SUFFIX = re.compile(r"-[A-Za-z0-9]{6}$")
# (region, secret id, stage, version id): one version of one secret
VersionKey = tuple[str, str, str | None, str | None]


@dataclass(frozen=True)
class Selector:
    """One ``aws:`` reference, split: which secret, which version, which JSON key."""

    secret_id: str
    json_key: str | None = None
    stage: str | None = None
    version_id: str | None = None
    region: str | None = None

    @property
    def current(self) -> bool:
        return self.version_id is None and self.stage in (None, "AWSCURRENT")

    def describe(self) -> str:
        pinned = f" version {self.version_id}" if self.version_id else ""
        staged = f" stage {self.stage}" if self.stage else ""
        return f"secret {self.secret_id!r}{pinned}{staged}"


def _pick(source: str, field: str, first: str | None, second: str) -> str | None:
    if first and second:
        raise UsageError(f"{field} given twice in {source!r}", "give it once")
    return first or second or None


def parse_selector(ref: SecretRef) -> Selector:
    """Split ``ref`` into a Selector; ECS ARN fields are ``:JSON_KEY:STAGE:VERSION_ID``.

    Raises:
        UsageError: an unknown option, a malformed ARN, or a field given twice.
    """
    loc = split_locator(ref.locator)
    unknown = sorted(set(loc.query) - {"stage", "version_id"})
    if unknown:
        raise UsageError(
            f"unknown option {unknown[0]!r} in {ref.source!r}", "use ?stage= or ?version_id="
        )
    secret_id, region = loc.path, None
    key, stage, version_id = loc.fragment, loc.query.get("stage"), loc.query.get("version_id")
    if secret_id.startswith("arn:"):
        parts = secret_id.split(":")
        if not 7 <= len(parts) <= 10 or parts[2] != "secretsmanager" or parts[5] != "secret":
            raise UsageError(
                f"{ref.source!r} is not a Secrets Manager ARN",
                "use arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME[:JSON_KEY:STAGE:VERSION]",
            )
        ecs = [*parts[7:], "", "", ""]
        secret_id, region = ":".join(parts[:7]), parts[3] or None
        key = _pick(ref.source, "JSON key", key, ecs[0])
        stage = _pick(ref.source, "stage", stage, ecs[1])
        version_id = _pick(ref.source, "version id", version_id, ecs[2])
    if not secret_id:
        raise UsageError(f"{ref.source!r} names no secret", "write aws:SECRET_ID")
    return Selector(secret_id, key or None, stage or None, version_id or None, region)


def json_field(call: Call, key: str, value: bytes, is_text: bool) -> bytes:
    """One top-level key of a JSON object secret, as ECS's ``json-key`` picks it.

    Raises:
        SecretNotFound: the secret is no JSON object, or has no such key (only key names
            are shown, never values).
    """
    try:
        document = json.loads(value) if is_text else None
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise SecretNotFound(
            call.line(f"{call.service.label} holds no JSON object (so no key {key!r}) in"),
            f"drop '#{key}' to get the whole value",
        )
    if key not in document:
        present = ", ".join(sorted(map(str, document))) or "none"
        raise SecretNotFound(
            call.line(f"{call.service.label} has no JSON key {key!r} in"),
            f"keys present: {present}",
        )
    field = document[key]
    return (field if isinstance(field, str) else json.dumps(field)).encode()


SECRETS_MANAGER = Service(
    "aws",
    "AWS Secrets Manager",
    "secretsmanager:GetSecretValue",
    frozenset({"ResourceNotFoundException"}),
)


class AwsProvider(BaseProvider):
    """Secrets Manager values; JSON keys, stages and version ids as ECS supports them.

    Args:
        settings: the ``[providers.aws]`` table.
        client: an injected boto3 ``secretsmanager`` client (tests).
    """

    scheme = "aws"

    def __init__(self, settings: AwsSettings, client: SecretsManagerClient | None = None) -> None:
        self._clients = AwsClients(settings, "secretsmanager", client)
        self._batch = True

    @classmethod
    def from_config(cls, config: Config) -> AwsProvider:
        return cls(AwsSettings.from_config(config))

    def _call(self, ref: SecretRef, sel: Selector) -> tuple[SecretsManagerClient, Call]:
        client, region, endpoint = self._clients.get(sel.region)
        what = sel.describe()
        return client, Call(
            SECRETS_MANAGER, self._clients.settings, ref.name, what, region, endpoint
        )

    def get(self, ref: SecretRef) -> Secret:
        return self.get_many([ref])[0]

    def get_many(self, refs: Sequence[SecretRef]) -> list[Secret]:
        """Current versions come through BatchGetSecretValue, 20 at a time, per region.

        Anything the batch did not return (pinned versions, errors, a server without the
        operation) is fetched alone, so failures get the same one-line errors as ``get``.
        References to one version of one secret (say, two JSON keys) cost one request.
        """
        sels = [parse_selector(ref) for ref in refs]
        calls = [self._call(ref, sel) for ref, sel in zip(refs, sels, strict=True)]
        keys = [_version_key(call, sel) for (_, call), sel in zip(calls, sels, strict=True)]
        responses = self._batch_current(calls, sels)
        for (client, call), sel, key in zip(calls, sels, keys, strict=True):
            if key not in responses:
                responses[key] = self._fetch(client, call, sel)
        return [
            self._secret(ref, sel, call, responses[key])
            for ref, sel, (_, call), key in zip(refs, sels, calls, keys, strict=True)
        ]

    def _fetch(self, client: SecretsManagerClient, call: Call, sel: Selector) -> Mapping[str, Any]:
        request: dict[str, str] = {"SecretId": sel.secret_id}
        if sel.stage:
            request["VersionStage"] = sel.stage
        if sel.version_id:
            request["VersionId"] = sel.version_id
        log.debug("aws: GetSecretValue %s (%s)", sel.secret_id, call.region)
        with aws_errors(call):
            return client.get_secret_value(**request)

    def _batch_current(
        self, calls: Sequence[tuple[SecretsManagerClient, Call]], sels: Sequence[Selector]
    ) -> dict[VersionKey, Mapping[str, Any]]:
        """Fetch the current versions of two or more secrets per region in batches."""
        regions: dict[str, tuple[SecretsManagerClient, Call, dict[str, None]]] = {}
        for (client, call), sel in zip(calls, sels, strict=True):
            if sel.current:
                regions.setdefault(call.region, (client, call, {}))[2][sel.secret_id] = None
        found: dict[VersionKey, Mapping[str, Any]] = {}
        for region, (client, call, unique) in regions.items():
            ids = list(unique) if len(unique) > 1 else []
            for start in range(0, len(ids), BATCH_SIZE):
                values = self._batch_get(client, call, ids[start : start + BATCH_SIZE])
                found.update(((region, i, None, None), value) for i, value in values.items())
        return found

    def _secret(
        self, ref: SecretRef, sel: Selector, call: Call, response: Mapping[str, Any]
    ) -> Secret:
        text = response.get("SecretString")
        if text is not None:
            value = expect(call, text, "SecretString", str).encode()
        else:
            value = expect(call, response.get("SecretBinary", b""), "SecretBinary", bytes)
        if sel.json_key:
            value = json_field(call, sel.json_key, value, text is not None)
        version = expect(call, response.get("VersionId"), "VersionId", str)
        return Secret(name=ref.name, version=version, value=value)

    def _batch_get(
        self, client: SecretsManagerClient, call: Call, ids: list[str]
    ) -> dict[str, Mapping[str, Any]]:
        from botocore.exceptions import ClientError

        if not self._batch:
            return {}
        names = ", ".join(repr(i) for i in ids)
        call = dataclasses.replace(call, name="", what=f"secrets {names}")
        log.debug("aws: BatchGetSecretValue %s (%s)", names, call.region)
        with aws_errors(call):
            try:
                response = client.batch_get_secret_value(SecretIdList=ids)
            except ClientError as exc:
                if client_code(exc) not in BATCH_UNSUPPORTED:
                    raise
                log.debug("aws: no BatchGetSecretValue (%s); one call per secret", client_code(exc))
                self._batch = False
                return {}
        values = expect(call, response.get("SecretValues", []), "SecretValues", list)
        return _match_ids(ids, [expect(call, v, "SecretValues[]", dict) for v in values])

    def version(self, ref: SecretRef) -> str:
        """The version id holding the requested stage, from DescribeSecret (no value read).

        A caller allowed GetSecretValue but not DescribeSecret (common for ECS task
        roles) still gets a version: from reading the secret.
        """
        from botocore.exceptions import ClientError

        sel = parse_selector(ref)
        if sel.version_id:
            return sel.version_id  # a version id names one immutable value
        client, call = self._call(ref, sel)
        log.debug("aws: DescribeSecret %s (%s)", sel.secret_id, call.region)
        with aws_errors(call):
            try:
                described = client.describe_secret(SecretId=sel.secret_id)
            except ClientError as exc:
                if client_code(exc) not in ACCESS_CODES:
                    raise
                return self.get(ref).version
        stages = expect(call, described.get("VersionIdsToStages", {}), "VersionIdsToStages", dict)
        stage = sel.stage or "AWSCURRENT"
        for version_id, labels in stages.items():
            if stage in expect(call, labels, "VersionIdsToStages{}", list):
                return str(version_id)
        raise SecretNotFound(call.line(f"{SECRETS_MANAGER.label} has no"), "check the version")


def _version_key(call: Call, sel: Selector) -> VersionKey:
    if sel.current:
        return (call.region, sel.secret_id, None, None)
    return (call.region, sel.secret_id, sel.stage, sel.version_id)


def _match_ids(
    ids: Iterable[str], values: Iterable[Mapping[str, Any]]
) -> dict[str, Mapping[str, Any]]:
    """Key each batch result by the id it was asked for: a name, an ARN or a partial ARN."""
    by_key: dict[str, Mapping[str, Any]] = {}
    for value in values:
        arn = str(value.get("ARN", ""))
        for key in (value.get("Name"), arn, ARN_SUFFIX.sub("", arn)):
            if key:
                by_key[str(key)] = value
    return {i: by_key[i] for i in ids if i in by_key}
