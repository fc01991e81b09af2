"""Talking to Vault as someone: login, token upkeep, retries and error mapping.

``vault.py`` decides *what* to read; this module decides *how* (with the settings of
``vault_settings.py``): which identity (token, token file, AppRole, Kubernetes), when to renew or
replace the token, how often to retry, and which of our errors hvac's exceptions become
(``vault_errors``, read by ``_errormap.mapped``). hvac and requests are imported only when
a session is created, so ``secretd --help`` never pays for them.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .._errormap import ErrorMap, Rule, mapped, only_from
from ..errors import AccessDenied, ProviderError, SecretdError, SecretNotFound
from ._http import DeadlineExceeded, RedirectRefused, ResponseTooLarge, TransportError, deadline
from .vault_http import new_session
from .vault_settings import WHERE, VaultSettings, read_file
from .vault_shape import number, obj, text

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 3.0
CAPABILITY = {"GET": "read", "POST": "update", "PUT": "update", "DELETE": "delete"}


NOT_VAULT = "check that VAULT_ADDR or address in {where} is a Vault server"


@cache
def vault_errors() -> ErrorMap:
    """hvac's, requests' and the bounded transport's exceptions as ours, most specific
    first; no token, no value, no server text but a 400's scrubbed reason."""
    import hvac.exceptions as hv
    import requests.exceptions as rq

    redirected = "set VAULT_ADDR or address in {where} to the server that answers"
    return (
        ((DeadlineExceeded, rq.ReadTimeout), Rule(
            ProviderError, "vault at {address} did not answer within {timeout:g}s",
            "check the server, or raise timeout in {where}",
        )),
        (ResponseTooLarge, Rule(
            ProviderError, "vault at {address} answered more than {exc.size} for {subject}",
            "raise max_response_size in {where} if such answers are expected",
        )),
        (RedirectRefused, Rule(
            ProviderError, "vault at {address} redirected the request for {subject} to "
            "{exc.target}; secretd sends its token to {address} only", redirected,
        )),
        (rq.TooManyRedirects, Rule(
            ProviderError, "vault at {address} redirected the request for {subject} in a "
            "loop; secretd sends its token to {address} only", redirected,
        )),
        (rq.SSLError, Rule(
            ProviderError, "vault at {address}: TLS verification failed",
            "set VAULT_CACERT or cacert in {where}",
        )),
        (rq.RequestException, Rule(
            ProviderError, "vault at {address} unreachable",
            "check that the server runs and VAULT_ADDR or address in {where}",
        )),
        (hv.Forbidden, Rule(
            AccessDenied, "vault denied access to {subject} ({auth} auth)",
            "a policy of this identity must grant {capability!r} on {path!r}",
        )),
        (hv.Unauthorized, Rule(AccessDenied, "vault rejected the {auth} credentials")),
        (hv.InvalidPath, Rule(
            SecretNotFound, "vault has nothing at {subject}", "check the path {path!r}"
        )),
        (hv.InvalidRequest, Rule(
            RequestRejected, "vault rejected the request for {subject}", "{reason}"
        )),
        (hv.VaultDown, Rule(
            ProviderError, "vault at {address} is sealed or unavailable (HTTP 503)",
            "unseal it, or wait for an active node",
        )),
        ((hv.VaultError, TransportError), Rule(
            ProviderError, "vault at {address} failed on {subject} ({kind})"
        )),
        # json's decoder recurses once per level of nesting
        (RecursionError, Rule(
            ProviderError,
            "vault at {address} answered the request for {subject} with JSON nested too deeply",
            NOT_VAULT,
        )),
        ((AttributeError, TypeError, ValueError, KeyError), only_from(("hvac.",), Rule(
            ProviderError,
            "vault at {address} answered the request for {subject} with an error hvac cannot "
            "read",
            NOT_VAULT,
        ))),
    )  # fmt: skip


class LoginFailed(AccessDenied):
    """Logging in (or unwrapping the secret_id to log in with) failed: the identity, not
    the path asked for, is the problem."""


class RequestRejected(ProviderError):
    """Vault understood the request and said no (HTTP 400): a used wrapper, an unknown
    lease, a missing parameter. Callers that expect refusals catch exactly this."""


@dataclass
class _TokenState:
    """What we know about the current token's life (times are ``time.monotonic()``)."""

    expires: float | None = None  # None: no TTL (root tokens) or unknown
    period: float = 0.0  # the TTL it was created with
    renewable: bool = False


class VaultSession:
    """An authenticated connection to one Vault server; thread-safe.

    Args:
        settings: address, TLS, auth method and its inputs, retries and timeout.
        client: an ``hvac.Client`` to use instead of building one (tests).
    """

    def __init__(self, settings: VaultSettings, client: Any = None) -> None:
        self.settings = settings
        self._client = client if client is not None else self._new_client()
        self._client.token = None
        self._state = _TokenState()
        self._secret_id: str | None = None
        self._credentials: set[str] = set()
        self._lock = threading.RLock()

    @property
    def auth_name(self) -> str:
        return self.settings.auth.replace("_", " ")

    def _new_client(self) -> Any:
        import hvac

        settings = self.settings
        verify: bool | str = False if settings.skip_verify else (settings.cacert or True)
        if settings.skip_verify:
            # Said once here, instead of urllib3's warning on every request.
            log.warning("vault: TLS verification is off for %s (skip_verify)", settings.address)
            host = urlsplit(settings.address).hostname or ""
            warnings.filterwarnings(
                "ignore", f"Unverified HTTPS request is being made to host '{re.escape(host)}'"
            )
        return hvac.Client(
            url=settings.address,
            token="",
            verify=verify,
            session=new_session(settings.address, settings.limits, settings.retries, verify),
            # (connect, read): an address that drops packets fails fast too.
            timeout=(min(CONNECT_TIMEOUT, settings.timeout), settings.timeout),
            namespace=settings.namespace,
        )

    def call(
        self,
        method: str,
        path: str,
        subject: str,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One authenticated request; returns Vault's JSON answer (``{}`` for none).

        Args:
            method: HTTP method.
            path: the API path after ``/v1/``.
            subject: what the user asked for, named in errors (``secret/app``).

        Raises:
            AccessDenied, SecretNotFound, RequestRejected, ProviderError.
        """
        with self._lock:
            self._ensure_token()
        return self._send(method, path, subject, params=params, body=body)

    def _send(
        self,
        method: str,
        path: str,
        subject: str,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Send within one deadline (the session retries reads, see ``vault_http``), then
        map failures (``vault_errors``); an answer that is not a JSON object is damaged."""
        log.debug("vault: %s %s", method, path)
        fields = {"provider": "vault", "method": method, "path": path}
        with (
            mapped(
                vault_errors(), fields, address=self.settings.address, where=WHERE,
                timeout=self.settings.timeout, subject=subject, path=path, auth=self.auth_name,
                capability=CAPABILITY.get(method.upper(), method.lower()), reason=self._reason,
            ),
            deadline(self.settings.timeout),
        ):  # fmt: skip
            answer = self._client.adapter.request(
                method, f"/v1/{path}", params=params, json=body, headers=dict(headers or {})
            )
        if isinstance(answer, dict):
            return answer
        if getattr(answer, "status_code", None) == 204:
            return {}
        raise ProviderError(
            f"vault at {self.settings.address} answered the request for {subject} with "
            "something other than a JSON object",
            NOT_VAULT.format(where=WHERE),
        )

    def _reason(self, exc: Any) -> str:
        """Vault's error text, on one line, with every credential we hold blanked out."""
        text = ", ".join(str(e) for e in (getattr(exc, "errors", None) or []))
        for credential in self._credentials:
            text = text.replace(credential, "<redacted>")
        return re.sub(r"\s+", " ", text).strip(" *")

    def _use_token(self, token: str) -> None:
        self._credentials.add(token)
        self._client.token = token

    def _ensure_token(self) -> None:
        """Log in on first use; renew a token below 1/3 of its TTL; log in again when the
        renewal fails or no longer extends it (its max TTL is near)."""
        state = self._state
        if not self._client.token:
            self.login()
            return
        if state.expires is None or state.expires - time.monotonic() >= state.period / 3:
            return
        if state.renewable:
            try:
                subject = "token renewal"
                answer = self._send("POST", "auth/token/renew-self", subject, body={})
                auth = obj(answer.get("auth"), "auth", subject)
                ttl = number(auth.get("lease_duration"), "auth.lease_duration", subject)
            except SecretdError as exc:
                log.info("vault: token renewal failed (%s); logging in again", exc.message)
            else:
                self._track(ttl, bool(auth.get("renewable")))
                if ttl >= state.period / 3:
                    log.debug("vault: token renewed for %ss", ttl)
                    return
                log.info("vault: token is near its max TTL; logging in again")
        self.login()

    def _track(self, ttl: float, renewable: bool, period: float | None = None) -> None:
        self._state.expires = time.monotonic() + ttl if ttl else None
        self._state.renewable = bool(renewable)
        if period is not None:
            self._state.period = float(period)

    def login(self) -> None:
        """Obtain a token with the configured auth method (or adopt the given one).

        The old token stays in place until the new one replaces it: requests running in
        other threads keep a token, and Vault ignores it on login endpoints.
        """
        with self._lock:
            if self.settings.auth in ("token", "token_file"):
                self._adopt_token()
                return
            mount = self.settings.auth_mount or self.settings.auth
            body = self._approle_body() if self.settings.auth == "approle" else self._k8s_body()
            try:
                answer = self._send("POST", f"auth/{mount}/login", f"auth/{mount}", body=body)
            except (RequestRejected, AccessDenied) as exc:
                raise LoginFailed(
                    f"vault {self.auth_name} login at auth/{mount} failed", exc.hint or exc.message
                ) from None
            subject = f"auth/{mount}"
            auth = obj(answer.get("auth"), "auth", subject)
            token = text(auth.get("client_token"), "auth.client_token", subject)
            ttl = number(auth.get("lease_duration"), "auth.lease_duration", subject)
            self._use_token(token)
            self._track(ttl, bool(auth.get("renewable")), ttl)
            log.debug("vault: logged in with %s for %ss", self.auth_name, ttl)

    def _adopt_token(self) -> None:
        token = self.settings.token
        if self.settings.auth == "token_file":
            token = read_file(str(self.settings.token_file), "token")
        self._use_token(str(token))
        try:
            subject = "the token's own lookup"
            answer = self._send("GET", "auth/token/lookup-self", subject)
            data = obj(answer.get("data"), "data", subject)
        except AccessDenied:
            # A token without the default policy may not look itself up; it can still
            # read secrets, so carry on and let it age without renewal.
            log.debug("vault: token lookup denied; not tracking its TTL")
            self._track(0, False, 0)
            return
        self._track(
            number(data.get("ttl"), "data.ttl", subject),
            bool(data.get("renewable")),
            number(data.get("creation_ttl"), "data.creation_ttl", subject),
        )

    def _approle_body(self) -> dict[str, str]:
        settings = self.settings
        role_id = settings.role_id or read_file(str(settings.role_id_file), "role_id")
        body = {"role_id": role_id}
        if self._secret_id is None and settings.secret_id_file:
            self._secret_id = self._read_secret_id(settings.secret_id_file)
        if self._secret_id is not None:
            body["secret_id"] = self._secret_id
        return body

    def _read_secret_id(self, path: str) -> str:
        """Read (and unwrap, and delete, as configured) the secret_id: once per process, at
        the first login, so no token of ours displaces the wrapping token's header."""
        content = read_file(path, "secret_id")
        self._credentials.add(content)
        if self.settings.remove_secret_id_file:
            Path(path).unlink()
        if not self.settings.secret_id_wrapped:
            return content
        subject = f"the wrapped secret_id in {path}"
        try:
            answer = self._send(
                "POST", "sys/wrapping/unwrap", subject, body={}, headers={"X-Vault-Token": content}
            )
        except (RequestRejected, AccessDenied):
            raise LoginFailed(
                f"vault could not unwrap the secret_id in {path}: the wrapping token was "
                "already used, has expired or is not a wrapping token",
                "issue a new wrapped secret_id (someone else may have unwrapped this one)",
            ) from None
        data = obj(answer.get("data"), "data", subject)
        secret_id = text(data.get("secret_id"), "data.secret_id", subject)
        self._credentials.add(secret_id)
        return secret_id

    def _k8s_body(self) -> dict[str, str]:
        jwt = read_file(self.settings.jwt_file, "service account token")
        self._credentials.add(jwt)
        return {"role": str(self.settings.role), "jwt": jwt}
