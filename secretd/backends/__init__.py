"""Providers: one module per URI scheme, found through the ``secretd.providers`` entry points.

Third-party packages add a scheme by declaring an entry point in that group whose object
is a provider class with a ``from_config(config)`` constructor.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from .. import plugins
from ..config import Config
from ..errors import SecretdError
from ..spec import Secret, SecretRef

GROUP = "secretd.providers"
log = logging.getLogger(__name__)


class Provider(Protocol):
    scheme: str

    def get(self, ref: SecretRef) -> Secret:
        """Fetch the current value. Raises SecretNotFound or ProviderError."""
        ...

    def get_many(self, refs: Sequence[SecretRef]) -> list[Secret]:
        """Fetch several at once, in order (providers with a batch API override this)."""
        ...

    def version(self, ref: SecretRef) -> str:
        """A cheap change check for rotation: differs whenever the value does."""
        ...

    def renew(self, secret: Secret) -> Secret | None:
        """Extend a leased secret; ``None`` when the lease cannot be renewed any more."""
        ...

    def revoke(self, secret: Secret) -> None:
        """Give a leased secret back when the command that used it is gone."""
        ...


class BaseProvider:
    """Defaults for providers whose secrets carry no lease and have no batch API."""

    scheme = ""

    def get(self, ref: SecretRef) -> Secret:
        raise NotImplementedError

    def get_many(self, refs: Sequence[SecretRef]) -> list[Secret]:
        """Fetch in order; on a failure, give back the leases this call already took (the
        caller never sees them, so it could not)."""
        secrets: list[Secret] = []
        try:
            for ref in refs:
                secrets.append(self.get(ref))
        except BaseException:
            for secret in secrets:
                if secret.lease_id is not None:
                    try:
                        self.revoke(secret)
                    except SecretdError as exc:
                        log.error("could not revoke the lease of %s: %s", secret.name, exc)
            raise
        return secrets

    def version(self, ref: SecretRef) -> str:
        return self.get(ref).version

    def renew(self, secret: Secret) -> Secret | None:
        return secret

    def revoke(self, secret: Secret) -> None:
        return None


class ProviderFactory(Protocol):
    def from_config(self, config: Config) -> Provider: ...


def available_schemes() -> list[str]:
    return plugins.names(GROUP)


def load_provider(scheme: str, config: Config) -> Provider:
    """Import and construct the provider for ``scheme`` (imports happen only here)."""
    factory: ProviderFactory = plugins.load(GROUP, scheme, "provider")
    return factory.from_config(config)
