"""An AWS endpoint that answers as AWS never would: a redirect to another host, a
trickle, an endless body, damaged JSON. Each ends in one line within the configured
limits, and nothing (no signed request, no credential) goes anywhere but the endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from secretd.backends._aws import AwsSettings
from secretd.backends.aws import AwsProvider
from secretd.backends.ssm import SsmProvider
from secretd.errors import ProviderError
from secretd.refs import parse_ref
from tests.aws.servers import ACCESS_KEY, REGION
from tests.conftest import Runner
from tests.support.hostile_http import (
    HostileServer,
    Reply,
    answer,
    endless,
    hostile_server,
    raw,
    redirect,
    refused_quickly,
    trickle,
)

pytestmark = pytest.mark.aws

JSON = "application/x-amz-json-1.1"
GET = "POST secretsmanager.GetSecretValue"
REF = parse_ref("db=aws:prod/db")


@pytest.fixture
def endpoint(aws_env: None) -> Iterator[HostileServer]:
    with hostile_server() as server:
        server.routes[GET] = answer({"SecretString": "pw", "VersionId": "v1"}, 200, JSON)
        yield server


@pytest.fixture
def elsewhere() -> Iterator[HostileServer]:
    with hostile_server() as server:
        server.fallback = answer({"SecretString": "forged", "VersionId": "v9"}, 200, JSON)
        yield server


def secrets_manager(server: HostileServer, **settings: Any) -> AwsProvider:
    return AwsProvider(AwsSettings(endpoint_url=server.url, region=REGION, **settings))


def where(server: HostileServer) -> str:
    return f"AWS Secrets Manager at {server.url}"


def test_the_endpoint_as_a_stand_in_answers(endpoint: HostileServer) -> None:
    assert secrets_manager(endpoint).get(REF).value == b"pw"


@pytest.mark.parametrize("status", [301, 307, 308])
def test_redirect_to_another_host_sends_it_nothing(
    endpoint: HostileServer, elsewhere: HostileServer, status: int
) -> None:
    endpoint.routes[GET] = redirect(f"{elsewhere.url}/", status)
    with pytest.raises(ProviderError) as caught:
        secrets_manager(endpoint).get(REF)
    assert str(caught.value) == (
        f"{where(endpoint)} redirected the request (secret 'prod/db', {REGION}) to "
        f"{elsewhere.url}; secretd sends AWS requests to {endpoint.url} only: "
        "set endpoint_url in [providers.aws] to the endpoint that answers"
    )
    assert elsewhere.seen == []
    assert endpoint.hits(GET) == 1  # a refusal is not retried


def test_redirect_from_the_cli_is_one_line(
    secretd: Runner, endpoint: HostileServer, elsewhere: HostileServer
) -> None:
    endpoint.routes[GET] = redirect(f"{elsewhere.url}/")
    Path("secretd.toml").write_text(
        f'[providers.aws]\nendpoint_url = "{endpoint.url}"\nregion = "{REGION}"\n'
    )
    result = secretd("run", "--secret", "db=aws:prod/db", "--", "true")
    assert (result.returncode, result.stdout) == (125, "")
    assert result.stderr.startswith(f"secretd: {where(endpoint)} redirected the request")
    assert len(result.stderr.splitlines()) == 1
    assert elsewhere.seen == []
    assert ACCESS_KEY not in result.stderr


TOO_BIG = (
    f"answered more than 4 KiB (secret 'prod/db', {REGION}): "
    "raise max_response_size in [providers.aws] if such answers are expected"
)
CUT_OFF: dict[str, tuple[Reply, dict[str, int], str]] = {
    "trickle": (
        trickle(0.1),
        {"timeout": 1},
        f"did not answer within 1s (secret 'prod/db', {REGION}): "
        "try again, or raise timeout in [providers.aws]",
    ),
    "endless, announced": (endless(True), {"max_response_size": 4096}, TOO_BIG),
    "endless, unannounced": (endless(False), {"max_response_size": 4096}, TOO_BIG),
}


@pytest.mark.parametrize("case", list(CUT_OFF))
def test_a_trickle_or_an_endless_body_is_cut_off(endpoint: HostileServer, case: str) -> None:
    reply, settings, message = CUT_OFF[case]
    endpoint.routes[GET] = reply
    client = secrets_manager(endpoint, **settings)
    refused_quickly(lambda: client.get(REF), f"{where(endpoint)} {message}")


DAMAGED: dict[str, tuple[Reply, str]] = {
    "SecretString a number": (
        answer({"SecretString": 5, "VersionId": "v"}, 200, JSON),
        "SecretString is not a string",
    ),
    "no VersionId": (answer({"SecretString": "x"}, 200, JSON), "VersionId is not a string"),
    "SecretBinary no base64": (
        answer({"SecretBinary": "!!notb64", "VersionId": "v"}, 200, JSON),
        "fields of the wrong type",
    ),
    "a list": (answer([1, 2], 200, JSON), "fields of the wrong type"),
    "html": (raw(b"<html>captive portal</html>", 200, "text/html"), "VersionId is not a string"),
    "deep nesting": (raw(b'{"a":' * 50_000 + b"1" + b"}" * 50_000, 200, JSON), "not AWS's JSON"),
}


@pytest.mark.parametrize("case", list(DAMAGED))
def test_damaged_answers_are_one_line(endpoint: HostileServer, case: str) -> None:
    reply, what = DAMAGED[case]
    endpoint.routes[GET] = reply
    with pytest.raises(ProviderError) as caught:
        secrets_manager(endpoint, max_attempts=1).get(REF)
    assert str(caught.value) == (
        f"secret 'db': {where(endpoint)} sent a damaged answer ({what}) for secret "
        f"'prod/db' in {REGION}: check endpoint_url in [providers.aws]"
    )


def test_damaged_parameter_tree_is_one_line(endpoint: HostileServer) -> None:
    endpoint.routes["POST AmazonSSM.GetParametersByPath"] = answer(
        {"Parameters": [{"Name": "/app/x", "Value": None, "Version": 1}]}, 200, JSON
    )
    provider = SsmProvider(AwsSettings(endpoint_url=endpoint.url, region=REGION))
    with pytest.raises(ProviderError) as caught:
        provider.get(parse_ref("conf=ssm:/app/*"))
    assert str(caught.value) == (
        f"secret 'conf': AWS Systems Manager Parameter Store at {endpoint.url} sent a damaged "
        f"answer (Parameters[].Value is not a string) for parameters under '/app' in {REGION}: "
        "check endpoint_url in [providers.aws]"
    )
