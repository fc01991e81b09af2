"""Find providers and runtimes by name: secretd's own directly, others by entry point.

Scanning the entry points of every installed distribution costs about 35 ms, more than
the rest of ``secretd run``'s start-up, so the built-in names (also declared as entry
points in pyproject.toml, which a test keeps in step) are imported without a scan; only
an unknown name makes secretd look at third-party entry points.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from .errors import SecretdError, UsageError

BUILTIN: Mapping[str, Mapping[str, str]] = {
    "secretd.providers": {
        "local": "secretd.backends.local:LocalProvider",
        "env": "secretd.backends.env:EnvProvider",
        "dotenv": "secretd.backends.dotenv:DotenvProvider",
        "file": "secretd.backends.file:FileProvider",
        "vault": "secretd.backends.vault:VaultProvider",
        "aws": "secretd.backends.aws:AwsProvider",
        "ssm": "secretd.backends.ssm:SsmProvider",
    },
    "secretd.runtimes": {
        "sandbox": "secretd.runtime.sandbox:SandboxRuntime",
        "host": "secretd.runtime.hostdir:HostRuntime",
        "oci": "secretd.runtime.oci.runtime:OciRuntime",
        "docker": "secretd.runtime.engines.docker:DockerRuntime",
        "podman": "secretd.runtime.engines.podman:PodmanRuntime",
    },
}


class MissingDependency(SecretdError):
    """secretd as installed lacks a library a plugin needs: its own failure, not the
    user's input (exit 125, as ``docker run`` for a daemon that cannot do it)."""

    exit_code = 125


def require(module: str, what: str, extra: str) -> None:
    """Import ``module`` now, so that a missing optional extra is one line, not a traceback.

    Raises:
        MissingDependency: the module cannot be imported.
    """
    try:
        importlib.import_module(module)
    except ImportError:
        raise MissingDependency(
            f"{what} needs the Python package {module!r}, which is not installed",
            f"pip install 'secretd[{extra}]'",
        ) from None


def _entry_points(group: str) -> dict[str, Any]:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=group)}


def names(group: str) -> list[str]:
    return sorted(set(BUILTIN[group]) | set(_entry_points(group)))


def load(group: str, name: str, what: str) -> Any:
    """The object registered as ``name`` in ``group``.

    Raises:
        UsageError: nothing is registered under that name.
        MissingDependency: a third-party plugin's module cannot be imported.
    """
    target = BUILTIN[group].get(name)
    if target is not None:
        module, _, attr = target.partition(":")
        return getattr(importlib.import_module(module), attr)
    found = _entry_points(group).get(name)
    if found is None:
        raise UsageError(f"unknown {what} {name!r}", f"known {what}s: {', '.join(names(group))}")
    try:
        return found.load()
    except ImportError as exc:
        raise MissingDependency(
            f"the {what} {name!r} ({found.value}) cannot be imported: {type(exc).__name__}",
            f"reinstall the package that provides it ({exc.name or 'unknown module'})",
        ) from None
