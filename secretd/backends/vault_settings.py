"""Where Vault is and who secretd is to it: ``[providers.vault]`` merged with Vault's own
``VAULT_*`` variables, checked before anything is sent."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import ProviderError, UsageError
from ._http import DEFAULT_MAX_SIZE, DEFAULT_TIMEOUT, Limits

DEFAULT_ADDRESS = "https://127.0.0.1:8200"  # Vault's own default
DEFAULT_JWT_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"
ENV = {
    "VAULT_ADDR": "address",
    "VAULT_TOKEN": "token",
    "VAULT_NAMESPACE": "namespace",
    "VAULT_CACERT": "cacert",
    "VAULT_SKIP_VERIFY": "skip_verify",
    "VAULT_MAX_RETRIES": "retries",
    "VAULT_CLIENT_TIMEOUT": "timeout",
}
WHERE = "[providers.vault]"
# What each auth method cannot do without, and how to give it.
NEEDS = {
    "token": ("token", f"set VAULT_TOKEN or token in {WHERE}"),
    "token_file": ("token_file", f"set token_file in {WHERE}"),
    "approle": ("role_id", f"set role_id or role_id_file in {WHERE}"),
    "kubernetes": ("role", f"set role (the Vault role to log in as) in {WHERE}"),
}


@dataclass(frozen=True)
class VaultSettings:
    """Where Vault is and who we are to it. Credentials never show in the repr."""

    address: str = DEFAULT_ADDRESS
    auth: str = "token"
    namespace: str | None = None
    cacert: str | None = None
    skip_verify: bool = False
    token: str | None = field(default=None, repr=False)
    token_file: str | None = None
    role_id: str | None = field(default=None, repr=False)
    role_id_file: str | None = None
    secret_id_file: str | None = None
    remove_secret_id_file: bool = False
    secret_id_wrapped: bool = False
    role: str | None = None
    jwt_file: str = DEFAULT_JWT_FILE
    auth_mount: str | None = None
    retries: int = 2
    timeout: float = DEFAULT_TIMEOUT  # for a whole request, retries included
    max_response_size: int = DEFAULT_MAX_SIZE

    @property
    def limits(self) -> Limits:
        return Limits(self.timeout, self.max_response_size)

    @classmethod
    def load(cls, config: Mapping[str, Any], environ: Mapping[str, str]) -> VaultSettings:
        """Merge ``[providers.vault]`` with Vault's own variables (which win).

        A ``VAULT_TOKEN`` in the environment selects token auth, as it does for the
        ``vault`` command. Without ``auth``, the credentials given choose the method.

        Raises:
            UsageError: an unknown or malformed setting.
            ProviderError: the auth method lacks what it needs (no credentials).
        """
        known = {f.name: f.default for f in fields(cls)}
        unknown = sorted(set(config) - set(known))
        if unknown:
            raise UsageError(
                f"unknown setting {unknown[0]!r} in {WHERE}",
                f"known settings: {', '.join(sorted(known))}",
            )
        raw = {**config, **{key: environ[var] for var, key in ENV.items() if environ.get(var)}}
        if environ.get("VAULT_TOKEN"):
            raw["auth"] = "token"
        raw["auth"] = raw.get("auth") or _infer_auth(raw)
        values = {
            key: _coerce(key, value, type(known[key]))
            for key, value in raw.items()
            if value is not None and value != ""
        }
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        """Say which setting is missing or wrong, before anything is sent."""
        if not self.address.startswith(("http://", "https://")):
            raise UsageError(
                f"vault address {self.address!r} is not a URL", "use http(s)://HOST:PORT"
            )
        if self.auth not in NEEDS:
            raise UsageError(
                f"unknown vault auth method {self.auth!r}", f"use one of: {', '.join(NEEDS)}"
            )
        key, hint = NEEDS[self.auth]
        if not (getattr(self, key) or (key == "role_id" and self.role_id_file)):
            raise ProviderError(f"vault {self.auth} auth is missing {key}", hint)
        if self.secret_id_wrapped and not self.secret_id_file:
            raise UsageError(f"{WHERE} secret_id_wrapped needs secret_id_file")


def _coerce(key: str, value: Any, kind: type) -> Any:
    """A TOML or environment value as the type the setting's default has."""
    if kind is bool:
        return value is True or str(value).strip().lower() in {"1", "true", "yes", "on"}
    if kind in (int, float):
        try:
            number = kind(value)
        except (TypeError, ValueError):
            raise UsageError(f"{WHERE} {key} = {value!r} is not a number") from None
        if not 0 <= number <= 10**9:  # also refuses nan and inf
            raise UsageError(f"{WHERE} {key} = {value!r} is out of range", "use 0 to 10^9")
        return number
    return str(value)


def _infer_auth(raw: Mapping[str, Any]) -> str:
    if raw.get("token_file") and not raw.get("token"):
        return "token_file"
    if raw.get("role_id") or raw.get("role_id_file"):
        return "approle"
    if raw.get("role"):
        return "kubernetes"
    return "token"


def read_file(path: str, what: str) -> str:
    try:
        text = Path(path).read_text().strip()
    except OSError as exc:
        raise ProviderError(
            f"cannot read the vault {what} file {path}: {exc.strerror}", f"check {WHERE}"
        ) from None
    if not text:
        raise ProviderError(f"the vault {what} file {path} is empty", f"check {WHERE}")
    return text
