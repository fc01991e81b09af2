"""``ssm:`` references against a real moto_server."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from secretd.backends._aws import AwsSettings
from secretd.backends.ssm import SsmProvider
from secretd.config import Config
from secretd.errors import ProviderError, SecretNotFound, UsageError
from secretd.refs import parse_ref
from tests.aws.servers import REGION, FakeAws, Moto

pytestmark = pytest.mark.aws


@pytest.fixture
def ssm(moto: Moto) -> Any:
    return moto.client("ssm")


@pytest.fixture
def provider(moto: Moto, config: Callable[..., Config]) -> SsmProvider:
    return SsmProvider.from_config(config(aws={"endpoint_url": moto.url, "region": REGION}))


@pytest.fixture
def app_tree(ssm: Any) -> None:
    ssm.put_parameter(Name="/app/prod/db/url", Value="postgres://db:5432/app", Type="String")
    ssm.put_parameter(Name="/app/prod/db/password", Value="tree-secret-pw", Type="SecureString")
    ssm.put_parameter(Name="/app/prod/log_level", Value="info", Type="String")
    ssm.put_parameter(Name="/app/prodx/other", Value="not mine", Type="String")
    ssm.put_parameter(Name="/app/prod", Value="the prefix itself", Type="String")


def recording(moto: Moto) -> tuple[SsmProvider, list[str]]:
    client = moto.client("ssm")
    calls: list[str] = []
    client.meta.events.register("before-call", lambda model, **_: calls.append(model.name))
    return SsmProvider(AwsSettings(endpoint_url=moto.url, region=REGION), client), calls


def test_string_parameter(ssm: Any, provider: SsmProvider) -> None:
    ssm.put_parameter(Name="/app/prod/url", Value="https://example.test", Type="String")
    secret = provider.get(parse_ref("ssm:/app/prod/url"))
    assert (secret.name, secret.value, secret.version) == ("url", b"https://example.test", "1")


def test_secure_string_is_decrypted(ssm: Any, provider: SsmProvider) -> None:
    ssm.put_parameter(Name="/app/prod/key", Value="s3cr3t-ssm", Type="SecureString")
    stored = ssm.get_parameter(Name="/app/prod/key")["Parameter"]["Value"]
    assert stored != "s3cr3t-ssm"  # what a reader without WithDecryption gets
    assert provider.get(parse_ref("key=ssm:/app/prod/key")).value == b"s3cr3t-ssm"


def test_pinned_version(ssm: Any, provider: SsmProvider) -> None:
    ssm.put_parameter(Name="/app/prod/url", Value="one", Type="String")
    ssm.put_parameter(Name="/app/prod/url", Value="two", Type="String", Overwrite=True)
    assert provider.get(parse_ref("url=ssm:/app/prod/url")).value == b"two"
    pinned = provider.get(parse_ref("url=ssm:/app/prod/url?version=1"))
    assert (pinned.value, pinned.version) == (b"one", "1")
    assert provider.version(parse_ref("url=ssm:/app/prod/url?version=1")) == "1"


def test_prefix_tree(app_tree: None, provider: SsmProvider) -> None:
    secret = provider.get(parse_ref("conf=ssm:/app/prod/*"))
    assert secret.value == b""
    assert dict(secret.tree or {}) == {
        "db/url": b"postgres://db:5432/app",
        "db/password": b"tree-secret-pw",
        "log_level": b"info",
    }
    assert "tree-secret-pw" not in repr(secret)


def test_tree_spans_pages(ssm: Any, provider: SsmProvider) -> None:
    for n in range(25):
        ssm.put_parameter(Name=f"/big/p{n:02}", Value=str(n), Type="String")
    secret = provider.get(parse_ref("big=ssm:/big/*"))
    assert dict(secret.tree or {}) == {f"p{n:02}": str(n).encode() for n in range(25)}
    assert provider.version(parse_ref("big=ssm:/big/*")) == secret.version


def test_root_tree(ssm: Any, provider: SsmProvider) -> None:
    ssm.put_parameter(Name="/a/b", Value="1", Type="String")
    ssm.put_parameter(Name="/c", Value="2", Type="String")
    assert dict(provider.get(parse_ref("all=ssm:/*")).tree or {}) == {"a/b": b"1", "c": b"2"}


def test_versions_are_cheap_and_follow_updates(app_tree: None, ssm: Any, moto: Moto) -> None:
    provider, calls = recording(moto)
    tree, one = parse_ref("conf=ssm:/app/prod/*"), parse_ref("url=ssm:/app/prod/db/url")
    before = (provider.version(tree), provider.version(one))
    assert calls == ["DescribeParameters", "DescribeParameters"]
    assert before == (provider.get(tree).version, "1")

    ssm.put_parameter(Name="/app/prod/db/url", Value="changed", Type="String", Overwrite=True)
    after = (provider.version(tree), provider.version(one))
    assert after[0] != before[0] and after[1] == "2"
    assert after == (provider.get(tree).version, provider.get(one).version)

    ssm.put_parameter(Name="/app/prod/new", Value="added", Type="String")
    assert provider.version(tree) not in (before[0], after[0])
    ssm.put_parameter(Name="/app/prodx/more", Value="elsewhere", Type="String")
    assert provider.version(tree) == provider.get(tree).version


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (
            "db=ssm:/app/nope",
            "secret 'db': AWS Systems Manager Parameter Store has no parameter '/app/nope' "
            "in us-east-1: check the name and the region",
        ),
        (
            "db=ssm:/app/prod/db/url?version=9",
            "secret 'db': AWS Systems Manager Parameter Store has no parameter "
            "'/app/prod/db/url' version 9 in us-east-1: check the name and the region",
        ),
        (
            "conf=ssm:/app/empty/*",
            "secret 'conf': AWS Systems Manager Parameter Store has no parameters under "
            "'/app/empty' in us-east-1: check the prefix",
        ),
    ],
)
def test_missing(app_tree: None, provider: SsmProvider, text: str, line: str) -> None:
    with pytest.raises(SecretNotFound) as caught:
        provider.get(parse_ref(text))
    assert str(caught.value) == line
    assert caught.value.__cause__ is None


def test_version_of_a_missing_parameter(moto: Moto, provider: SsmProvider) -> None:
    with pytest.raises(SecretNotFound, match="has no parameter '/app/nope'"):
        provider.version(parse_ref("db=ssm:/app/nope"))


@pytest.mark.parametrize("name", ["/bad/../escape", "/bad/./dot", "/bad/..data", "/bad//empty"])
def test_tree_names_that_cannot_be_files(ssm: Any, provider: SsmProvider, name: str) -> None:
    ssm.put_parameter(Name="/bad/fine", Value="ok", Type="String")
    ssm.put_parameter(Name=name, Value="tree-secret-pw", Type="String")
    with pytest.raises(ProviderError) as caught:
        provider.get(parse_ref("conf=ssm:/bad/*"))
    assert str(caught.value).startswith(
        f"secret 'conf': AWS Systems Manager Parameter Store parameter {name!r} cannot be a file"
    )
    assert "tree-secret-pw" not in str(caught.value)


def test_tree_with_a_file_where_a_directory_goes(ssm: Any, provider: SsmProvider) -> None:
    ssm.put_parameter(Name="/app/c/db", Value="x", Type="String")
    ssm.put_parameter(Name="/app/c/db/url", Value="y", Type="String")
    with pytest.raises(ProviderError, match="has both 'db' and 'db/url'"):
        provider.get(parse_ref("conf=ssm:/app/c/*"))


def test_server_down(aws_env: None, dead_url: str, config: Callable[..., Config]) -> None:
    provider = SsmProvider.from_config(config(aws={"endpoint_url": dead_url, "region": REGION}))
    start = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        provider.get(parse_ref("conf=ssm:/app/prod/*"))
    assert time.monotonic() - start < 5
    assert str(caught.value).startswith(
        f"AWS Systems Manager Parameter Store at {dead_url} unreachable"
    )


def test_ssm_endpoint_override(
    ssm: Any, moto: Moto, dead_url: str, config: Callable[..., Config]
) -> None:
    ssm.put_parameter(Name="/app/url", Value="here", Type="String")
    tables = {
        "aws": {"endpoint_url": dead_url, "region": REGION},
        "ssm": {"endpoint_url": moto.url},
    }
    assert SsmProvider.from_config(config(**tables)).get(parse_ref("ssm:/app/url")).value == b"here"
    with pytest.raises(UsageError, match="unknown setting 'region' in \\[providers.ssm\\]"):
        SsmProvider.from_config(config(ssm={"region": REGION}))


def test_access_denied_and_version_fallback(
    fake_aws: FakeAws, config: Callable[..., Config]
) -> None:
    provider = SsmProvider.from_config(config(aws={"endpoint_url": fake_aws.url, "region": REGION}))
    fake_aws.answer("AmazonSSM.GetParameter", 400, "AccessDeniedException")
    with pytest.raises(ProviderError) as caught:
        provider.get(parse_ref("db=ssm:/app/db"))
    assert str(caught.value) == (
        "secret 'db': AWS Systems Manager Parameter Store denied access to parameter '/app/db' "
        "in us-east-1: grant the caller ssm:GetParameter, ssm:GetParametersByPath "
        "(and kms:Decrypt for its key)"
    )
    fake_aws.answer("AmazonSSM.DescribeParameters", 400, "AccessDeniedException")
    fake_aws.routes["AmazonSSM.GetParameter"] = lambda _body: (
        200,
        {"Parameter": {"Name": "/app/db", "Value": "v", "Version": 4, "Type": "String"}},
    )
    assert provider.version(parse_ref("db=ssm:/app/db")) == "4"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("db=ssm:/app/db#key", "ssm references take no #key"),
        ("db=ssm:/app/db?label=x", "ssm references take no \\?label="),
        ("db=ssm:/app/db?version=abc", "version 'abc' is not a positive number"),
        ("conf=ssm:app/*", "a parameter tree needs an absolute prefix and no version"),
        ("conf=ssm:/app/*?version=2", "a parameter tree needs an absolute prefix and no version"),
    ],
)
def test_bad_references(provider: SsmProvider, text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        provider.get(parse_ref(text))
