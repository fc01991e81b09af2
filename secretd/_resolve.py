"""``secretd.resolve``: references in, secrets out, leases given back when the caller is
done. Kept out of ``secretd/__init__.py`` so that importing the package loads nothing."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator

from .broker import Broker
from .config import Config, load_config
from .refs import expand
from .spec import Secret, SecretRef


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
    if isinstance(refs, str | SecretRef):
        refs = [refs]
    if config is None:
        config = broker.config if broker is not None else load_config()
    parsed = [
        one
        for ref in refs
        for one in (
            (ref,) if isinstance(ref, SecretRef) else expand(ref, config.secrets, os.environ)
        )
    ]
    # in-process, the caller may list every name: a missing one gets "did you mean"
    broker = broker or Broker(config, suggest=True)
    secrets = broker.resolve(parsed)
    try:
        yield secrets
    finally:
        broker.release(parsed, secrets)
