"""``aws:`` references against a real moto_server (and canned errors from fake_aws)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from secretd.backends._aws import AwsSettings
from secretd.backends.aws import AwsProvider
from secretd.config import Config
from secretd.errors import AccessDenied, ProviderError, SecretNotFound, UsageError
from secretd.refs import parse_ref
from tests.aws.servers import REGION, SECRET_KEY, FakeAws, Moto

pytestmark = pytest.mark.aws

DB = {"password": "hunter2-current", "user": "app"}


@pytest.fixture
def sm(moto: Moto) -> Any:
    return moto.client("secretsmanager")


@pytest.fixture
def provider(moto: Moto, config: Callable[..., Config]) -> AwsProvider:
    return AwsProvider.from_config(config(aws={"endpoint_url": moto.url, "region": REGION}))


def recording(moto: Moto) -> tuple[AwsProvider, list[str]]:
    """A provider on an injected moto client that records every operation it calls."""
    client = moto.client("secretsmanager")
    calls: list[str] = []
    client.meta.events.register("before-call", lambda model, **_: calls.append(model.name))
    return AwsProvider(AwsSettings(endpoint_url=moto.url, region=REGION), client), calls


def assert_clean(exc: BaseException, *values: str) -> None:
    """One line, no chained library exception, no value, no credential."""
    text = str(exc)
    assert "\n" not in text
    assert exc.__cause__ is None
    assert exc.__context__ is None or exc.__suppress_context__
    for value in (*values, SECRET_KEY):
        assert value not in text


def test_string_secret(sm: Any, provider: AwsProvider) -> None:
    sm.create_secret(Name="prod/token", SecretString="plain-token-value")
    secret = provider.get(parse_ref("token=aws:prod/token"))
    assert secret.value == b"plain-token-value"
    assert secret.name == "token"
    assert "plain-token-value" not in repr(secret)


def test_binary_secret(sm: Any, provider: AwsProvider) -> None:
    blob = bytes(range(256))
    sm.create_secret(Name="prod/cert", SecretBinary=blob)
    assert provider.get(parse_ref("cert=aws:prod/cert")).value == blob


def test_json_key(sm: Any, provider: AwsProvider) -> None:
    sm.create_secret(Name="prod/db", SecretString=json.dumps({**DB, "port": 5432}))
    assert provider.get(parse_ref("aws:prod/db#password")).value == b"hunter2-current"
    assert provider.get(parse_ref("port=aws:prod/db#port")).value == b"5432"


def test_previous_stage_and_version_id(sm: Any, provider: AwsProvider) -> None:
    first = sm.create_secret(Name="prod/db", SecretString=json.dumps(DB))["VersionId"]
    sm.put_secret_value(SecretId="prod/db", SecretString=json.dumps({"password": "rotated"}))
    assert provider.get(parse_ref("db=aws:prod/db#password")).value == b"rotated"
    previous = provider.get(parse_ref("db=aws:prod/db?stage=AWSPREVIOUS#password"))
    assert (previous.value, previous.version) == (b"hunter2-current", first)
    pinned = provider.get(parse_ref(f"db=aws:prod/db#password?version_id={first}"))
    assert (pinned.value, pinned.version) == (b"hunter2-current", first)


def test_ecs_arn_forms(sm: Any, provider: AwsProvider) -> None:
    created = sm.create_secret(Name="prod/db", SecretString=json.dumps(DB))
    arn, first = created["ARN"], created["VersionId"]
    sm.put_secret_value(SecretId="prod/db", SecretString=json.dumps({"password": "rotated"}))
    assert arn.split(":")[-1].startswith("prod/db-")  # the 6-character random suffix

    assert provider.get(parse_ref(f"db=aws:{arn}")).value == b'{"password": "rotated"}'
    assert provider.get(parse_ref(f"db=aws:{arn}:password::")).value == b"rotated"
    assert provider.get(parse_ref(f"db=aws:{arn}:password:AWSPREVIOUS:")).value == (
        b"hunter2-current"
    )
    assert provider.get(parse_ref(f"db=aws:{arn}:user::{first}")).value == b"app"
    partial = arn.rsplit("-", 1)[0]
    assert provider.get(parse_ref(f"db=aws:{partial}:password")).value == b"rotated"


def test_missing_secret(moto: Moto, provider: AwsProvider) -> None:
    with pytest.raises(SecretNotFound) as caught:
        provider.get(parse_ref("db=aws:prod/nope#password"))
    assert str(caught.value) == (
        "secret 'db': AWS Secrets Manager has no secret 'prod/nope' in us-east-1: "
        "check the name and the region"
    )
    assert_clean(caught.value)


def test_missing_json_key_names_keys_only(sm: Any, provider: AwsProvider) -> None:
    sm.create_secret(Name="prod/db", SecretString=json.dumps(DB))
    with pytest.raises(SecretNotFound) as caught:
        provider.get(parse_ref("db=aws:prod/db#pasword"))
    assert str(caught.value) == (
        "secret 'db': AWS Secrets Manager has no JSON key 'pasword' in secret 'prod/db' "
        "in us-east-1: keys present: password, user"
    )
    assert_clean(caught.value, "hunter2-current", "app")


@pytest.mark.parametrize(
    ("kwargs", "value"),
    [({"SecretString": "not json at all"}, "not json"), ({"SecretBinary": b"\x00{}"}, "\x00")],
)
def test_key_on_a_value_that_is_no_json_object(
    sm: Any, provider: AwsProvider, kwargs: dict[str, Any], value: str
) -> None:
    sm.create_secret(Name="prod/raw", **kwargs)
    with pytest.raises(SecretNotFound) as caught:
        provider.get(parse_ref("raw=aws:prod/raw#password"))
    assert str(caught.value) == (
        "secret 'raw': AWS Secrets Manager holds no JSON object (so no key 'password') in "
        "secret 'prod/raw' in us-east-1: drop '#password' to get the whole value"
    )
    assert_clean(caught.value, value)


def test_server_down_is_one_quick_line(
    aws_env: None, dead_url: str, config: Callable[..., Config]
) -> None:
    provider = AwsProvider.from_config(config(aws={"endpoint_url": dead_url, "region": REGION}))
    start = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        provider.get(parse_ref("db=aws:prod/db#password"))
    assert time.monotonic() - start < 5
    assert str(caught.value).startswith(f"AWS Secrets Manager at {dead_url} unreachable")
    assert "prod/db" in str(caught.value) and REGION in str(caught.value)
    assert_clean(caught.value)


def test_version_is_cheap_and_follows_rotation(sm: Any, moto: Moto) -> None:
    first = sm.create_secret(Name="prod/db", SecretString=json.dumps(DB))["VersionId"]
    provider, calls = recording(moto)
    current = parse_ref("db=aws:prod/db#password")
    assert provider.version(current) == first
    assert calls == ["DescribeSecret"]

    second = sm.put_secret_value(SecretId="prod/db", SecretString="{}")["VersionId"]
    assert provider.version(current) == second
    assert provider.get(parse_ref("db=aws:prod/db")).version == second
    assert provider.version(parse_ref("db=aws:prod/db?stage=AWSPREVIOUS")) == first
    assert provider.version(parse_ref(f"db=aws:prod/db?version_id={first}")) == first
    with pytest.raises(SecretNotFound, match="stage AWSPENDING"):
        provider.version(parse_ref("db=aws:prod/db?stage=AWSPENDING"))


def test_batch_keeps_order_and_fetches_pinned_alone(sm: Any, moto: Moto) -> None:
    first = sm.create_secret(Name="prod/db", SecretString=json.dumps(DB))["VersionId"]
    sm.put_secret_value(SecretId="prod/db", SecretString=json.dumps({"password": "rotated"}))
    arn = sm.create_secret(Name="prod/api", SecretString="api-key")["ARN"]
    sm.create_secret(Name="prod/cert", SecretBinary=b"\x01\x02")
    provider, calls = recording(moto)
    refs = [
        parse_ref("cert=aws:prod/cert"),
        parse_ref(f"old=aws:prod/db#password?version_id={first}"),
        parse_ref(f"api=aws:{arn.rsplit('-', 1)[0]}"),
        parse_ref("db=aws:prod/db#password"),
    ]
    secrets = provider.get_many(refs)
    assert [s.name for s in secrets] == ["cert", "old", "api", "db"]
    assert [s.value for s in secrets] == [b"\x01\x02", b"hunter2-current", b"api-key", b"rotated"]
    assert calls == ["BatchGetSecretValue", "GetSecretValue"]


def test_batches_of_twenty_and_one_request_per_version(sm: Any, moto: Moto) -> None:
    for n in range(21):
        sm.create_secret(Name=f"app/s{n}", SecretString=json.dumps({"n": n, "m": -n}))
    provider, calls = recording(moto)
    refs = [parse_ref(f"s{n}=aws:app/s{n}#n") for n in range(21)]
    refs += [parse_ref("m3=aws:app/s3#m"), parse_ref("p3=aws:app/s3?stage=AWSCURRENT")]
    secrets = provider.get_many(refs)
    assert [s.value for s in secrets] == [str(n).encode() for n in range(21)] + [
        b"-3",
        b'{"n": 3, "m": -3}',
    ]
    assert calls == ["BatchGetSecretValue", "BatchGetSecretValue"]
    calls.clear()
    assert provider.get_many(refs[:2] + refs[:2])[3].value == b"1"
    assert calls == ["BatchGetSecretValue"]


def test_no_credentials(
    moto: Moto, monkeypatch: pytest.MonkeyPatch, config: Callable[..., Config]
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    provider = AwsProvider.from_config(config(aws={"endpoint_url": moto.url, "region": REGION}))
    with pytest.raises(ProviderError) as caught:
        provider.get(parse_ref("db=aws:prod/db"))
    assert str(caught.value) == (
        "secret 'db': no AWS credentials found to reach AWS Secrets Manager for secret "
        "'prod/db' in us-east-1: set AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
        "or [providers.aws] profile"
    )


def test_batch_reports_a_missing_secret_like_get(sm: Any, provider: AwsProvider) -> None:
    sm.create_secret(Name="prod/api", SecretString="api-key")
    with pytest.raises(SecretNotFound, match="has no secret 'prod/gone' in us-east-1"):
        provider.get_many([parse_ref("api=aws:prod/api"), parse_ref("gone=aws:prod/gone")])


def test_batch_falls_back_when_the_server_lacks_it(
    fake_aws: FakeAws, config: Callable[..., Config]
) -> None:
    fake_aws.answer("secretsmanager.BatchGetSecretValue", 400, "UnknownOperationException")
    fake_aws.routes["secretsmanager.GetSecretValue"] = lambda body: (
        200,
        {
            "Name": body["SecretId"],
            "VersionId": "v1",
            "SecretString": f"value-of-{body['SecretId']}",
        },
    )
    provider = AwsProvider.from_config(config(aws={"endpoint_url": fake_aws.url, "region": REGION}))
    refs = [parse_ref("a=aws:app/a"), parse_ref("b=aws:app/b")]
    assert [s.value for s in provider.get_many(refs)] == [b"value-of-app/a", b"value-of-app/b"]
    assert [s.value for s in provider.get_many(refs)] == [b"value-of-app/a", b"value-of-app/b"]
    assert (
        fake_aws.hits
        == ["secretsmanager.BatchGetSecretValue"] + ["secretsmanager.GetSecretValue"] * 4
    )


@pytest.mark.parametrize(
    ("code", "status", "error", "line"),
    [
        (
            "AccessDeniedException",
            400,
            AccessDenied,
            "secret 'db': AWS Secrets Manager denied access to secret 'prod/db' in us-east-1: "
            "grant the caller secretsmanager:GetSecretValue (and kms:Decrypt for its key)",
        ),
        (
            "DecryptionFailure",
            400,
            ProviderError,
            "secret 'db': AWS Secrets Manager cannot decrypt secret 'prod/db' in us-east-1: "
            "check the KMS key and kms:Decrypt permission",
        ),
        (
            "ThrottlingException",
            400,
            ProviderError,
            "secret 'db': AWS Secrets Manager kept failing (ThrottlingException, 2 attempts) "
            "for secret 'prod/db' in us-east-1: try again later, or raise max_attempts in "
            "[providers.aws]",
        ),
        (
            "InternalServiceError",
            500,
            ProviderError,
            "secret 'db': AWS Secrets Manager kept failing (InternalServiceError, 2 attempts) "
            "for secret 'prod/db' in us-east-1: try again later, or raise max_attempts in "
            "[providers.aws]",
        ),
    ],
)
def test_service_errors_are_one_line(
    fake_aws: FakeAws,
    config: Callable[..., Config],
    code: str,
    status: int,
    error: type[Exception],
    line: str,
) -> None:
    fake_aws.answer("secretsmanager.GetSecretValue", status, code, "arn:aws:iam::1:user/x says no")
    provider = AwsProvider.from_config(
        config(aws={"endpoint_url": fake_aws.url, "region": REGION, "max_attempts": 2})
    )
    with pytest.raises(error) as caught:
        provider.get(parse_ref("db=aws:prod/db"))
    assert type(caught.value) is error
    assert str(caught.value) == line
    assert_clean(caught.value, "says no")
    retried = 2 if status == 500 or "Throttl" in code else 1
    assert fake_aws.hits == ["secretsmanager.GetSecretValue"] * retried


def test_version_without_describe_permission_reads_the_secret(
    fake_aws: FakeAws, config: Callable[..., Config]
) -> None:
    fake_aws.answer("secretsmanager.DescribeSecret", 400, "AccessDeniedException")
    fake_aws.routes["secretsmanager.GetSecretValue"] = lambda body: (
        200,
        {"Name": "prod/db", "VersionId": "v7", "SecretString": "x"},
    )
    provider = AwsProvider.from_config(config(aws={"endpoint_url": fake_aws.url, "region": REGION}))
    assert provider.version(parse_ref("db=aws:prod/db")) == "v7"


def test_assume_role_through_sts(sm: Any, moto: Moto, config: Callable[..., Config]) -> None:
    sm.create_secret(Name="prod/db", SecretString=json.dumps(DB))
    role = "arn:aws:iam::123456789012:role/reader"
    table = {"endpoint_url": moto.url, "region": REGION, "role_arn": role}
    provider = AwsProvider.from_config(config(aws={**table, "sts_endpoint_url": moto.url}))
    assert provider.get(parse_ref("db=aws:prod/db#password")).value == b"hunter2-current"


def test_assume_role_with_sts_down(
    moto: Moto, dead_url: str, config: Callable[..., Config]
) -> None:
    role = "arn:aws:iam::123456789012:role/reader"
    table = {"endpoint_url": moto.url, "region": REGION, "role_arn": role}
    provider = AwsProvider.from_config(config(aws={**table, "sts_endpoint_url": dead_url}))
    with pytest.raises(ProviderError) as caught:
        provider.get(parse_ref("db=aws:prod/db"))
    assert str(caught.value).startswith(f"AWS STS (assuming {role}) at {dead_url} unreachable")


def test_assume_role_denied(fake_aws: FakeAws, config: Callable[..., Config]) -> None:
    fake_aws.answer("sts.AssumeRole", 403, "AccessDenied", "arn:aws:iam::1:user/x is not allowed")
    role = "arn:aws:iam::123456789012:role/reader"
    table = {"endpoint_url": fake_aws.url, "sts_endpoint_url": fake_aws.url, "role_arn": role}
    provider = AwsProvider.from_config(config(aws={**table, "region": REGION}))
    with pytest.raises(AccessDenied) as caught:
        provider.get(parse_ref("db=aws:prod/db"))
    assert str(caught.value) == (
        f"secret 'db': AWS STS refused role {role} (AccessDenied) for secret 'prod/db' in "
        "us-east-1: check the role's trust policy and the caller's sts:AssumeRole permission"
    )
    assert fake_aws.hits == ["sts.AssumeRole"]
    assert_clean(caught.value, "not allowed")


def test_slow_server_times_out(fake_aws: FakeAws, config: Callable[..., Config]) -> None:
    fake_aws.delay = 1.0
    table = {"endpoint_url": fake_aws.url, "read_timeout": 0.2, "max_attempts": 1}
    provider = AwsProvider.from_config(config(aws={**table, "region": REGION}))
    with pytest.raises(ProviderError) as caught:
        provider.get(parse_ref("db=aws:prod/db"))
    assert str(caught.value) == (
        f"AWS Secrets Manager at {fake_aws.url} did not answer within 0.2s "
        "(secret 'prod/db', us-east-1): try again, or raise read_timeout in [providers.aws]"
    )


def test_no_region(aws_env: None, config: Callable[..., Config]) -> None:
    provider = AwsProvider.from_config(config(aws={"endpoint_url": "http://127.0.0.1:9"}))
    with pytest.raises(ProviderError, match="^no AWS region configured: set region in"):
        provider.get(parse_ref("db=aws:prod/db"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("db=aws:prod/db?stag=AWSCURRENT", "unknown option 'stag'"),
        ("db=aws:arn:aws:s3:::bucket", "is not a Secrets Manager ARN"),
        ("db=aws:arn:aws:secretsmanager:us-east-1:1:secret:db:k?#k", "JSON key given twice"),
    ],
)
def test_bad_references_are_usage_errors(provider: AwsProvider, text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        provider.get(parse_ref(text))


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"endpoint": "http://x"}, "unknown setting 'endpoint' in \\[providers.aws\\]"),
        ({"max_attempts": "3"}, "\\[providers.aws\\] max_attempts has the wrong type str"),
        ({"role_session_name": "has space"}, "role_session_name 'has space' is invalid"),
    ],
)
def test_bad_settings_are_usage_errors(
    config: Callable[..., Config], table: dict[str, Any], message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        AwsProvider.from_config(config(aws=table))
