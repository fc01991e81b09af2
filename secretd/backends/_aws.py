"""What the ``aws:`` and ``ssm:`` providers share: settings, boto3 sessions, error mapping.

Both services sit behind one ``[providers.aws]`` table and boto3's own credential chain
(``AWS_PROFILE``, environment, instance and task roles), optionally through an assumed
role. boto3 is imported inside functions only, when a reference is first resolved, so
``secretd --help`` never pays for it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from .._errormap import Build, ErrorMap, Names, Rule, mapped, only_from
from ..config import Config
from ..errors import AccessDenied, ProviderError, SecretdError, SecretNotFound, UsageError
from ._aws_transport import BoundedTransport
from ._http import (
    DEFAULT_MAX_SIZE,
    DEFAULT_TIMEOUT,
    DeadlineExceeded,
    Limits,
    RedirectRefused,
    ResponseTooLarge,
    deadline,
)

if TYPE_CHECKING:
    import boto3
    import botocore.config
    from botocore.exceptions import ClientError

SETTINGS = {
    "endpoint_url": str,
    "sts_endpoint_url": str,
    "region": str,
    "profile": str,
    "role_arn": str,
    "role_session_name": str,
    "max_attempts": int,
    "connect_timeout": (int, float),
    "read_timeout": (int, float),
    "timeout": (int, float),
    "max_response_size": int,
}
ACCESS_CODES = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"})
CREDENTIAL_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
    }
)
DECRYPT_CODES = frozenset(
    {"DecryptionFailure", "InvalidKeyId", "KMSAccessDeniedException", "KMSDisabledException"}
)
SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}", re.ASCII)
C = TypeVar("C")
T = TypeVar("T")


@dataclass(frozen=True)
class AwsSettings:
    """``[providers.aws]``: where to reach AWS and as whom; the rest is boto3's chain."""

    endpoint_url: str | None = None
    sts_endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    role_arn: str | None = None
    role_session_name: str = "secretd"
    max_attempts: int = 3
    connect_timeout: float = 2.0
    read_timeout: float = 5.0
    timeout: float = DEFAULT_TIMEOUT  # for one lookup, retries included
    max_response_size: int = DEFAULT_MAX_SIZE

    @property
    def limits(self) -> Limits:
        return Limits(self.timeout, self.max_response_size)

    @classmethod
    def from_config(cls, config: Config, override: str | None = None) -> AwsSettings:
        """Read ``[providers.aws]``, with ``[providers.OVERRIDE] endpoint_url`` on top.

        Raises:
            UsageError: an unknown key or a value of the wrong type.
        """
        table = dict(config.provider("aws"))
        if override:
            extra = dict(config.provider(override))
            _check_keys(extra, {"endpoint_url": str}, override)
            table.update(extra)
        _check_keys(table, SETTINGS, "aws")
        settings = cls(**table)
        if not SESSION_NAME.fullmatch(settings.role_session_name):
            raise UsageError(
                f"[providers.aws] role_session_name {settings.role_session_name!r} is invalid",
                "use 2-64 letters, digits or +=,.@_-",
            )
        return settings

    def botocore_config(self) -> botocore.config.Config:
        """Adaptive retries and short timeouts: a dead endpoint fails in seconds, not minutes."""
        from botocore.config import Config as BotoConfig

        return BotoConfig(
            retries={"mode": "adaptive", "total_max_attempts": self.max_attempts},
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
        )


def _check_keys(table: Mapping[str, Any], allowed: Mapping[str, Any], scheme: str) -> None:
    for key, value in table.items():
        if key not in allowed:
            raise UsageError(
                f"unknown setting {key!r} in [providers.{scheme}]",
                f"known settings: {', '.join(sorted(allowed))}",
            )
        if isinstance(value, bool) or not isinstance(value, allowed[key]):
            raise UsageError(
                f"[providers.{scheme}] {key} has the wrong type {type(value).__name__}"
            )
        if isinstance(value, int | float) and not 0 <= value <= 10**9:  # refuses nan, inf
            raise UsageError(f"[providers.{scheme}] {key} = {value!r} is out of range")


class AwsClients(Generic[C]):
    """One boto3 session per provider and one client per region, made on first use.

    Args:
        settings: the ``[providers.aws]`` table.
        service: boto3's name for the service (``secretsmanager``, ``ssm``).
        client: an injected client (tests); used for every region.
    """

    def __init__(self, settings: AwsSettings, service: str, client: C | None = None) -> None:
        self.settings = settings
        self._service = service
        self._injected = client
        self._session: boto3.Session | None = None
        self._verify: bool | str = True
        self._clients: dict[str, C] = {}
        self._lock = threading.Lock()

    def get(self, region: str | None = None) -> tuple[C, str, str]:
        """The client for ``region`` (default: configured), with its region and endpoint."""
        if self._injected is not None:
            meta = self._injected.meta  # type: ignore[attr-defined]
            return self._injected, str(meta.region_name), str(meta.endpoint_url)
        with self._lock:
            session = self._session or self._new_session()
            self._session = session
            region = region or self.settings.region or session.region_name
            if not region:
                raise ProviderError(
                    "no AWS region configured",
                    "set region in [providers.aws], AWS_REGION, or the profile",
                )
            if region not in self._clients:
                self._clients[region] = self._bounded(
                    session.client(  # type: ignore[call-overload]
                        self._service,
                        region_name=region,
                        endpoint_url=self.settings.endpoint_url,
                        config=self.settings.botocore_config(),
                    )
                )
            client = self._clients[region]
        return client, region, str(client.meta.endpoint_url)  # type: ignore[attr-defined]

    def _bounded(self, client: Any) -> Any:
        """``client`` with its requests sent within the settings' limits (``_http``)."""
        settings = self.settings
        timeouts = (settings.connect_timeout, settings.read_timeout)
        endpoint = str(client.meta.endpoint_url)
        BoundedTransport(endpoint, settings.limits, self._verify, timeouts).register(client)
        return client

    def _new_session(self) -> boto3.Session:
        import boto3
        import botocore.session
        from botocore.exceptions import ProfileNotFound

        core = botocore.session.get_session()
        if self.settings.profile:
            core.set_config_variable("profile", self.settings.profile)
        try:
            session = boto3.Session(botocore_session=core, region_name=self.settings.region)
            self._verify = core.get_config_variable("ca_bundle") or True
        except ProfileNotFound:
            raise UsageError(
                f"AWS profile {self.settings.profile!r} not found",
                "check [providers.aws] profile and ~/.aws/config",
            ) from None
        if self.settings.role_arn:
            session = self._assume_role(session)
        return session

    def _assume_role(self, base: boto3.Session) -> boto3.Session:
        """A session whose credentials come from STS AssumeRole and refresh before expiry."""
        import boto3
        import botocore.session
        from botocore.credentials import (
            AssumeRoleCredentialFetcher,
            CredentialProvider,
            DeferredRefreshableCredentials,
        )

        source = base.get_credentials()
        if source is None:
            raise ProviderError(
                f"no AWS credentials to assume role {self.settings.role_arn!r} with",
                "set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
            )

        def sts_client(service: str, **credentials: Any) -> Any:
            return self._bounded(
                base.client(  # type: ignore[call-overload]
                    service,
                    region_name=base.region_name,
                    endpoint_url=self.settings.sts_endpoint_url,
                    config=self.settings.botocore_config(),
                    **credentials,
                )
            )

        fetcher = AssumeRoleCredentialFetcher(
            sts_client,
            source,
            str(self.settings.role_arn),
            extra_args={"RoleSessionName": self.settings.role_session_name},
        )
        credentials = DeferredRefreshableCredentials(fetcher.fetch_credentials, "assume-role")

        class AssumedRole(CredentialProvider):
            METHOD = "secretd-assume-role"

            def load(self) -> DeferredRefreshableCredentials:
                return credentials

        core = botocore.session.Session()
        core.get_component("credential_provider").insert_before("env", AssumedRole())
        return boto3.Session(botocore_session=core, region_name=base.region_name)


@dataclass(frozen=True)
class Service:
    """What differs between the AWS services behind one error mapper."""

    scheme: str
    label: str
    permission: str
    not_found: frozenset[str]


@dataclass(frozen=True)
class Call:
    """What one request is about, for error messages: names only, never values."""

    service: Service
    settings: AwsSettings
    name: str
    what: str
    region: str
    endpoint: str

    @property
    def prefix(self) -> str:
        return f"secret {self.name!r}: " if self.name else ""

    def line(self, text: str) -> str:
        return f"{self.prefix}{text} {self.what} in {self.region}"


@contextmanager
def aws_errors(call: Call) -> Iterator[None]:
    """Map botocore's exceptions onto ours (``botocore_errors``) within the deadline."""
    label = call.service.label
    fields = {"provider": call.service.scheme, "region": call.region, "endpoint": call.endpoint}
    with (
        mapped(
            botocore_errors(), fields, call=call, label=label, where=f"{label} at {call.endpoint}",
            endpoint=call.endpoint, what=call.what, region=call.region,
            prefix=call.prefix,
            timeout=call.settings.timeout, read_timeout=call.settings.read_timeout,
        ),
        deadline(call.settings.timeout),
    ):  # fmt: skip
        yield


@cache
def botocore_errors() -> ErrorMap:
    """botocore's and the bounded transport's exceptions as ours, most specific first;
    none chains their text (a server's body, a signed URL)."""
    from botocore import exceptions as bx
    from botocore.parsers import ResponseParserError

    return (
        (DeadlineExceeded, Rule(
            ProviderError, "{where} did not answer within {timeout:g}s ({what}, {region})",
            "try again, or raise timeout in [providers.aws]",
        )),
        (ResponseTooLarge, Rule(
            ProviderError, "{where} answered more than {exc.size} ({what}, {region})",
            "raise max_response_size in [providers.aws] if such answers are expected",
        )),
        (RedirectRefused, Rule(
            ProviderError, "{where} redirected the request ({what}, {region}) to {exc.target}; "
            "secretd sends AWS requests to {endpoint} only",
            "set endpoint_url in [providers.aws] to the endpoint that answers",
        )),
        ((ResponseParserError, RecursionError), _with_call(
            lambda call, exc: damaged(call, "not AWS's JSON")
        )),
        ((TypeError, AttributeError, ValueError, KeyError, IndexError), only_from(
            ("botocore.parsers", "botocore.endpoint"),
            _with_call(lambda call, exc: damaged(call, "fields of the wrong type")),
        )),
        (bx.ClientError, _with_call(_client_error)),
        (bx.ReadTimeoutError, Rule(
            ProviderError, "{where} did not answer within {read_timeout:g}s ({what}, {region})",
            "try again, or raise read_timeout in [providers.aws]",
        )),
        ((bx.ConnectionError, bx.HTTPClientError), _with_call(
            lambda call, exc: _unreachable(call, str(exc.kwargs.get("endpoint_url") or ""))
        )),
        ((bx.NoCredentialsError, bx.PartialCredentialsError), Rule(
            ProviderError,
            "{prefix}no AWS credentials found to reach {label} for {what} in {region}",
            "set AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or [providers.aws] profile",
        )),
        (bx.ParamValidationError, Rule(
            UsageError, "{prefix}{label} rejects the reference to {what} in {region}",
            "check the name",
        )),
        (bx.BotoCoreError, Rule(
            ProviderError, "{prefix}{label} failed ({kind}) on {what} in {region}"
        )),
    )  # fmt: skip


def _with_call(build: Callable[[Call, Any], SecretdError]) -> Build:
    """A table entry that reads the whole ``Call`` (the service's codes, the role)."""

    def entry(exc: Any, names: Names) -> SecretdError:
        return build(cast(Call, names["call"]), exc)

    return entry


def _client_error(call: Call, exc: ClientError) -> SecretdError:
    meta = exc.response.get("ResponseMetadata", {})
    code = client_code(exc)
    label = call.service.label
    if exc.operation_name == "AssumeRole":
        return AccessDenied(
            call.line(f"AWS STS refused role {call.settings.role_arn} ({code}) for"),
            "check the role's trust policy and the caller's sts:AssumeRole permission",
        )
    if code in call.service.not_found:
        return SecretNotFound(call.line(f"{label} has no"), "check the name and the region")
    if code in ACCESS_CODES:
        return AccessDenied(
            call.line(f"{label} denied access to"),
            f"grant the caller {call.service.permission} (and kms:Decrypt for its key)",
        )
    if code in CREDENTIAL_CODES:
        return AccessDenied(
            call.line(f"{label} rejected the AWS credentials used for"),
            "check the credentials boto3 finds (AWS_PROFILE, AWS_ACCESS_KEY_ID, role_arn)",
        )
    if code in DECRYPT_CODES:
        return ProviderError(
            call.line(f"{label} cannot decrypt"), "check the KMS key and kms:Decrypt permission"
        )
    status = int(meta.get("HTTPStatusCode", 0))
    if status >= 500 or "Throttl" in code or code == "TooManyRequestsException":
        attempts = int(meta.get("RetryAttempts", 0)) + 1
        return ProviderError(
            call.line(f"{label} kept failing ({code or status}, {attempts} attempts) for"),
            "try again later, or raise max_attempts in [providers.aws]",
        )
    return ProviderError(call.line(f"{label} refused ({code or status})"))


def _unreachable(call: Call, url: str) -> ProviderError:
    where = call.endpoint
    label = call.service.label
    if call.settings.role_arn and url and not url.startswith(call.endpoint):
        label, where = f"AWS STS (assuming {call.settings.role_arn})", url.rstrip("/")
    return ProviderError(
        f"{label} at {where} unreachable ({call.what}, {call.region})",
        "check endpoint_url in [providers.aws], the network and the proxy settings",
    )


def damaged(call: Call, what: str) -> ProviderError:
    return ProviderError(
        call.line(f"{call.service.label} at {call.endpoint} sent a damaged answer ({what}) for"),
        "check endpoint_url in [providers.aws]",
    )


KINDS: Mapping[type, str] = {str: "a string", int: "a number", dict: "an object", list: "a list"}


def expect(call: Call, value: Any, name: str, kind: type[T]) -> T:
    """``value`` if it has the type AWS's API promises; otherwise the answer is damaged."""
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    raise damaged(call, f"{name} is not {KINDS.get(kind, kind.__name__)}")


def client_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
