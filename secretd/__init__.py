"""secretd: resolve secrets from providers and mount them as in-memory files.

The library comes first; the ``secretd`` command is its thin face. The names in
``__all__`` are the supported surface (docs/library.md); every other module is internal
and may change between releases. Each name is imported on first use (PEP 562), so that
``import secretd`` and ``secretd --help`` load nothing they do not need, and boto3, hvac
and docker only with the provider or runtime that uses them.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (4 ms)
if TYPE_CHECKING:
    from typing import Any

    from ._resolve import resolve
    from .broker import Broker
    from .config import Config, load_config
    from .engine import Engine
    from .errors import (
        AccessDenied,
        LaunchError,
        MountError,
        NotInStore,
        ProviderError,
        SecretdError,
        SecretNotFound,
        StoreError,
        UsageError,
    )
    from .plugins import MissingDependency
    from .refs import parse_ref
    from .spec import RunSpec, Secret, SecretRef
    from .store import LocalStore, SecretExists

__version__ = "0.1.0"

# name -> the module that defines it, imported by __getattr__ when the name is first used
_LAZY = {
    "resolve": "_resolve",
    "load_config": "config",
    "Config": "config",
    "parse_ref": "refs",
    "SecretRef": "spec",
    "Secret": "spec",
    "RunSpec": "spec",
    "Broker": "broker",
    "Engine": "engine",
    "LocalStore": "store",
    "SecretExists": "store",
    "MissingDependency": "plugins",
    "SecretdError": "errors",
    "UsageError": "errors",
    "SecretNotFound": "errors",
    "NotInStore": "errors",
    "ProviderError": "errors",
    "AccessDenied": "errors",
    "StoreError": "errors",
    "MountError": "errors",
    "LaunchError": "errors",
}

__all__ = [
    "__version__",
    "resolve",
    "load_config",
    "Config",
    "parse_ref",
    "SecretRef",
    "Secret",
    "RunSpec",
    "Broker",
    "Engine",
    "LocalStore",
    "SecretdError",
    "UsageError",
    "SecretNotFound",
    "NotInStore",
    "ProviderError",
    "AccessDenied",
    "StoreError",
    "MountError",
    "LaunchError",
    "SecretExists",
    "MissingDependency",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib  # here, not above: the thin client imports this package (0.6 ms)

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    """The supported names, for completion in a REPL."""
    return sorted(__all__)
