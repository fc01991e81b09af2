"""Any answer a server sends to the Vault and AWS providers gives a Secret or one of
secretd's own errors (ProviderError, SecretNotFound): never a KeyError, TypeError,
RecursionError or a library's exception.

One hostile HTTP server serves the module; each example changes what it answers (the body,
its status, which request gets it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from secretd.backends._aws import AwsSettings
from secretd.backends.aws import AwsProvider
from secretd.backends.ssm import SsmProvider
from secretd.backends.vault import VaultProvider
from secretd.backends.vault_settings import VaultSettings
from secretd.errors import ProviderError, SecretNotFound
from secretd.refs import parse_ref
from secretd.spec import Secret
from tests.fuzz.strategies import json_like
from tests.support.hostile_http import HostileServer, hostile_server, raw

# Each example costs HTTP round trips: fewer than the profile's 150 in make test, a
# tenth of the long profile's in make fuzz.
EXAMPLES = 60 if settings.default.max_examples <= 150 else settings.default.max_examples // 10
FUZZ = settings(
    max_examples=EXAMPLES,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
OURS = (ProviderError, SecretNotFound)

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
values = json_like(scalars, 4, st.text(max_size=10), max_leaves=12)


def shaped(*keys: str) -> st.SearchStrategy[Any]:
    """Objects with the keys an honest answer has, holding anything."""
    return st.fixed_dictionaries({}, optional={key: values for key in keys})


def body(*keys: str) -> st.SearchStrategy[bytes]:
    documents = values | shaped(*keys)
    encoded = documents.map(lambda doc: json.dumps(doc).encode())
    deep = st.integers(1, 60_000).map(lambda n: b'{"data":' * n + b"1" + b"}" * n)
    return encoded | deep | st.binary(max_size=64)


errors = shaped("__type", "message", "Message").map(lambda doc: json.dumps(doc).encode())
statuses = st.sampled_from([200, 200, 200, 204, 302, 400, 403, 404, 412, 500, 503])


@pytest.fixture(scope="module")
def server() -> Iterator[HostileServer]:
    with hostile_server() as hostile:
        yield hostile


VAULT_ROUTES = {
    "GET /v1/auth/token/lookup-self": body("data"),
    "GET /v1/sys/internal/ui/mounts/secret/app": shaped("data").map(
        lambda doc: json.dumps(doc).encode()
    )
    | st.just(b'{"data": {"type": "kv", "path": "secret/", "options": {"version": "2"}}}'),
    "GET /v1/secret/data/app": st.fixed_dictionaries({"data": shaped("data", "metadata")}).map(
        lambda doc: json.dumps(doc).encode()
    )
    | body("data"),
}
HONEST_VAULT = {
    "GET /v1/auth/token/lookup-self": b'{"data": {"ttl": 0}}',
    "GET /v1/sys/internal/ui/mounts/secret/app": (
        b'{"data": {"type": "kv", "path": "secret/", "options": {"version": "2"}}}'
    ),
    "GET /v1/secret/data/app": (
        b'{"data": {"data": {"password": "pw"}, "metadata": {"version": 1}}}'
    ),
}


vault_answers = st.sampled_from(sorted(VAULT_ROUTES)).flatmap(
    lambda route: st.tuples(st.just(route), VAULT_ROUTES[route])
)


@FUZZ
@given(answer=vault_answers, status=statuses)
def test_vault_answers(server: HostileServer, answer: tuple[str, bytes], status: int) -> None:
    route, payload = answer
    server.routes = {key: raw(value) for key, value in HONEST_VAULT.items()}
    server.routes[route] = raw(payload, status)
    vault = VaultProvider(
        VaultSettings.load({"address": server.url, "token": "t", "retries": 0, "timeout": 5}, {})
    )
    try:
        secret = vault.get(parse_ref("vault:secret/app#password"))
    except OURS:
        return
    assert isinstance(secret, Secret)


@pytest.fixture(scope="module")
def aws(server: HostileServer) -> Iterator[tuple[AwsProvider, SsmProvider]]:
    keys = {"AWS_ACCESS_KEY_ID": "AKIAFUZZ", "AWS_SECRET_ACCESS_KEY": "fuzz"}
    saved = {key: os.environ.get(key) for key in keys}
    os.environ.update(keys)
    settings = AwsSettings(endpoint_url=server.url, region="us-east-1", max_attempts=1, timeout=5)
    try:
        yield AwsProvider(settings), SsmProvider(settings)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


AWS_CALLS = {
    "POST secretsmanager.GetSecretValue": (
        "db=aws:prod/db#password",
        body("SecretString", "SecretBinary", "VersionId"),
    ),
    "POST AmazonSSM.GetParameter": ("db=ssm:/app/db", body("Parameter")),
    "POST AmazonSSM.GetParametersByPath": ("conf=ssm:/app/*", body("Parameters", "NextToken")),
}


aws_answers = st.sampled_from(sorted(AWS_CALLS)).flatmap(
    lambda call: st.tuples(st.just(call), AWS_CALLS[call][1] | errors)
)


@FUZZ
@given(answer=aws_answers, status=statuses)
def test_aws_answers(
    server: HostileServer,
    aws: tuple[AwsProvider, SsmProvider],
    answer: tuple[str, bytes],
    status: int,
) -> None:
    call, payload = answer
    reference = AWS_CALLS[call][0]
    server.routes = {call: raw(payload, status, "application/x-amz-json-1.1")}
    provider = aws[0] if reference.startswith("db=aws:") else aws[1]
    try:
        secret = provider.get(parse_ref(reference))
    except OURS:
        return
    assert isinstance(secret, Secret)
