"""``ssm:NAME[?version=N]`` and ``ssm:/PREFIX/*``: AWS Systems Manager Parameter Store.

Parameter Store holds configuration more often than secrets, so a whole hierarchy can be
mounted at once: ``ssm:/app/prod/*`` becomes one file per parameter below ``/app/prod``,
its path kept, under the reference's target directory (the mount layer writes
``Secret.tree``). SecureStrings are always decrypted. Settings come from
``[providers.aws]``; ``[providers.ssm] endpoint_url`` may point this service elsewhere.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..config import Config
from ..errors import ProviderError, SecretNotFound, UsageError
from ..refs import check_target, split_locator
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
    from mypy_boto3_ssm import SSMClient

log = logging.getLogger(__name__)

PARAMETER_STORE = Service(
    "ssm",
    "AWS Systems Manager Parameter Store",
    "ssm:GetParameter, ssm:GetParametersByPath",
    frozenset({"ParameterNotFound", "ParameterVersionNotFound"}),
)
TREE = "/*"


@dataclass(frozen=True)
class ParamSelector:
    """One ``ssm:`` reference: a parameter (maybe a pinned version) or a tree prefix."""

    name: str
    version: int | None = None
    tree: bool = False

    def describe(self) -> str:
        if self.tree:
            return f"parameters under {self.name!r}"
        pinned = f" version {self.version}" if self.version else ""
        return f"parameter {self.name!r}{pinned}"


def parse_param(ref: SecretRef) -> ParamSelector:
    """Split an ``ssm:`` reference.

    Raises:
        UsageError: a ``#key``, an unknown option, a bad version, or a relative tree prefix.
    """
    loc = split_locator(ref.locator)
    unknown = sorted(set(loc.query) - {"version"})
    if loc.fragment or unknown:
        bad = f"#{loc.fragment}" if loc.fragment else f"?{unknown[0]}="
        raise UsageError(f"{ref.source!r}: ssm references take no {bad}", "use ?version=N")
    version = loc.query.get("version")
    if version is not None and (not version.isdigit() or int(version) < 1):
        raise UsageError(f"{ref.source!r}: version {version!r} is not a positive number")
    if loc.path.endswith(TREE):
        prefix = loc.path[: -len(TREE)] or "/"
        if not prefix.startswith("/") or version is not None:
            raise UsageError(
                f"{ref.source!r}: a parameter tree needs an absolute prefix and no version",
                "write ssm:/PREFIX/*",
            )
        return ParamSelector(prefix, tree=True)
    if not loc.path:
        raise UsageError(f"{ref.source!r} names no parameter", "write ssm:/PATH/TO/PARAM")
    return ParamSelector(loc.path, int(version) if version else None)


def relative_path(call: Call, prefix: str, name: str) -> str:
    """Where parameter ``name`` lands below the tree's directory; never outside it.

    Raises:
        ProviderError: the name cannot be a file path (``..``, ``.``, empty elements).
    """
    base = "" if prefix == "/" else prefix.rstrip("/")
    rel = name.removeprefix(f"{base}/")
    inside = rel != name or not base
    if inside and rel and not rel.startswith("/") and _is_target(rel):
        return rel
    raise ProviderError(
        call.line(f"{PARAMETER_STORE.label} parameter {name!r} cannot be a file, in"),
        "rename it: no empty, '.' or '..'-prefixed path elements",
    )


def _is_target(path: str) -> bool:
    try:
        check_target(path, path)
    except UsageError:
        return False
    return True


def check_layout(call: Call, paths: Mapping[str, object]) -> None:
    """A parameter ``/a/b`` and a parameter ``/a/b/c`` cannot both become files."""
    for path in paths:
        parts = path.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent in paths:
                raise ProviderError(
                    call.line(
                        f"{PARAMETER_STORE.label} has both {parent!r} and {path!r}, "
                        "a file and a directory at one path, in"
                    ),
                    "mount a deeper prefix, or rename one of them",
                )


def tree_version(versions: Mapping[str, int]) -> str:
    """One version for a tree: changes when any parameter is added, removed or updated."""
    listing = "".join(f"{path}\0{version}\n" for path, version in sorted(versions.items()))
    return hashlib.sha256(listing.encode()).hexdigest()[:16]


def _parameters(call: Call, page: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    listed = expect(call, page.get("Parameters", []), "Parameters", list)
    return [expect(call, parameter, "Parameters[]", dict) for parameter in listed]


def _text(call: Call, parameter: Mapping[str, Any], key: str) -> str:
    return expect(call, parameter.get(key), f"Parameters[].{key}", str)


class SsmProvider(BaseProvider):
    """Parameter Store values, decrypted, one at a time or as a whole tree.

    Args:
        settings: ``[providers.aws]`` with ``[providers.ssm] endpoint_url`` on top.
        client: an injected boto3 ``ssm`` client (tests).
    """

    scheme = "ssm"

    def __init__(self, settings: AwsSettings, client: SSMClient | None = None) -> None:
        self._clients = AwsClients(settings, "ssm", client)

    @classmethod
    def from_config(cls, config: Config) -> SsmProvider:
        return cls(AwsSettings.from_config(config, override="ssm"))

    def _call(self, ref: SecretRef, sel: ParamSelector) -> tuple[SSMClient, Call]:
        client, region, endpoint = self._clients.get()
        settings = self._clients.settings
        return client, Call(PARAMETER_STORE, settings, ref.name, sel.describe(), region, endpoint)

    def get(self, ref: SecretRef) -> Secret:
        sel = parse_param(ref)
        client, call = self._call(ref, sel)
        if sel.tree:
            return self._tree(ref, sel, client, call)
        name = f"{sel.name}:{sel.version}" if sel.version else sel.name
        log.debug("ssm: GetParameter %s (%s)", name, call.region)
        with aws_errors(call):
            answer = client.get_parameter(Name=name, WithDecryption=True)
        parameter = expect(call, answer.get("Parameter"), "Parameter", dict)
        value = expect(call, parameter.get("Value"), "Parameter.Value", str)
        version = expect(call, parameter.get("Version"), "Parameter.Version", int)
        return Secret(name=ref.name, version=str(version), value=value.encode())

    def _tree(self, ref: SecretRef, sel: ParamSelector, client: SSMClient, call: Call) -> Secret:
        files: dict[str, bytes] = {}
        versions: dict[str, int] = {}
        log.debug("ssm: GetParametersByPath %s (%s)", sel.name, call.region)
        with aws_errors(call):
            pages = client.get_paginator("get_parameters_by_path").paginate(
                Path=sel.name, Recursive=True, WithDecryption=True
            )
            for page in pages:
                for parameter in _parameters(call, page):
                    path = relative_path(call, sel.name, _text(call, parameter, "Name"))
                    files[path] = _text(call, parameter, "Value").encode()
                    versions[path] = expect(call, parameter.get("Version"), "Version", int)
        if not files:
            raise SecretNotFound(call.line(f"{PARAMETER_STORE.label} has no"), "check the prefix")
        check_layout(call, files)
        return Secret(name=ref.name, version=tree_version(versions), value=b"", tree=files)

    def version(self, ref: SecretRef) -> str:
        """Parameter versions from DescribeParameters, which returns no values.

        A caller allowed GetParameter but not DescribeParameters still gets a version: from
        reading the parameter (or the tree).
        """
        from botocore.exceptions import ClientError

        sel = parse_param(ref)
        if sel.version:
            return str(sel.version)  # a pinned version never changes
        client, call = self._call(ref, sel)
        option, value = ("Recursive", sel.name) if sel.tree else ("Equals", sel.name)
        key = "Path" if sel.tree else "Name"
        versions: dict[str, int] = {}
        log.debug("ssm: DescribeParameters %s (%s)", sel.name, call.region)
        with aws_errors(call):
            try:
                pages = client.get_paginator("describe_parameters").paginate(
                    ParameterFilters=[{"Key": key, "Option": option, "Values": [value]}]
                )
                for page in pages:
                    for meta in _parameters(call, page):
                        name = _text(call, meta, "Name")
                        path = relative_path(call, sel.name, name) if sel.tree else name
                        versions[path] = expect(call, meta.get("Version"), "Version", int)
            except ClientError as exc:
                if client_code(exc) not in ACCESS_CODES:
                    raise
                return self.get(ref).version
        if not versions:
            raise SecretNotFound(call.line(f"{PARAMETER_STORE.label} has no"), "check the name")
        return tree_version(versions) if sel.tree else str(next(iter(versions.values())))
