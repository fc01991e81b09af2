"""secretd: resolve secrets from providers and mount them as in-memory files.

The library comes first; the ``secretd`` command is its thin face. The names in
``__all__`` are the supported surface (docs/library.md); every other module is internal
and may change between releases. Each name is imported on first use (PEP 562), so that
``import secretd`` and ``secretd --help`` load nothing they do not need, and boto3, hvac
and docker only with the provider or runtime that uses them.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .broker import Broker
    from .config import Config, load_config
    from .engine import Engine
    from .errors import (
        AccessDenied,
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
    "SecretExists",
    "MissingDependency",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    """The supported names, for completion in a REPL."""
    return sorted(__all__)


@contextlib.contextmanager
def resolve(
    refs: Iterable[str | SecretRef] | str | SecretRef,
    config: Config | None = None,
    *,
    broker: Broker | None = None,
) -> Iterator[list[Secret]]:
    """Resolve references and give their leases back when the ``with`` block ends.

    ``with secretd.resolve(["db=vault:secret/app#password"]) as (db,): ...``: the
    secrets come in the order of ``refs``; a failure resolves nothing and holds nothing
    (leases taken before it are revoked at once).

    Args:
        refs: reference strings in ``secretd run --secret``'s grammar
            (docs/references.md) or ``SecretRef``s; one string or ref is a list of one.
        config: bindings for bare names and provider settings; by default
            ``load_config()``, as the command would read them (``secretd.toml``,
            ``SECRETD_*``).
        broker: resolve through this broker (its providers and cache), e.g. one shared
            across calls; its config then settles provider settings.

    Raises:
        UsageError: a reference does not parse.
        SecretdError: a provider failed (``SecretNotFound``, ``ProviderError``, ...).
    """
    from .broker import Broker
    from .config import load_config
    from .refs import parse_ref
    from .spec import SecretRef

    if isinstance(refs, str | SecretRef):
        refs = [refs]
    if config is None:
        config = broker.config if broker is not None else load_config()
    parsed = [ref if isinstance(ref, SecretRef) else parse_ref(ref, config.secrets) for ref in refs]
    # in-process, the caller may list every name: a missing one gets "did you mean"
    broker = broker or Broker(config, suggest=True)
    secrets = broker.resolve(parsed)
    try:
        yield secrets
    finally:
        broker.release(parsed, secrets)
