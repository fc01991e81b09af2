"""Providers: one module per URI scheme, found through the ``secretd.providers`` entry points.

Third-party packages add a scheme by declaring an entry point in that group whose object
is a provider class with a ``from_config(config)`` constructor.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Protocol

from .. import plugins
from ..config import Config
from ..errors import SecretdError
from ..spec import Secret, SecretRef

GROUP = "secretd.providers"
log = logging.getLogger(__name__)

_AWS = frozenset(
    {
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_BEARER_TOKEN_BEDROCK",
    }
)  # fmt: skip
# The variables that carry each provider's credentials (what logs it in, not where it
# is). secretd may read them; the commands it starts never inherit them, whichever
# provider a run used (pass one on purpose with ``-e NAME``).
CREDENTIAL_ENV: Mapping[str, frozenset[str]] = {
    "local": frozenset({"SECRETD_PASSPHRASE", "SECRETD_NEW_PASSPHRASE"}),
    "vault": frozenset(
        {
            "VAULT_TOKEN",
            "BAO_TOKEN",
            "VAULT_ROLE_ID",
            "VAULT_SECRET_ID",
            "BAO_ROLE_ID",
            "BAO_SECRET_ID",
            "VAULT_UNWRAP_TOKEN",
        }
    ),
    "aws": _AWS,
    "ssm": _AWS,
}
CREDENTIAL_VARIABLES = frozenset().union(*CREDENTIAL_ENV.values())
# Providers built on an optional extra: (module, extra), imported when the provider is
# made so that a missing one is one line naming the extra.
REQUIRES: Mapping[str, tuple[str, str]] = {
    "vault": ("hvac", "vault"),
    "aws": ("boto3", "aws"),
    "ssm": ("boto3", "aws"),
}


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
    """Import and construct the provider for ``scheme`` (imports happen only here).

    Raises:
        UsageError: no provider has that scheme.
        MissingDependency: the provider's optional extra is not installed.
    """
    factory: ProviderFactory = plugins.load(GROUP, scheme, "provider")
    if scheme in REQUIRES:
        module, extra = REQUIRES[scheme]
        plugins.require(module, f"the {scheme} provider", extra)
    return factory.from_config(config)
