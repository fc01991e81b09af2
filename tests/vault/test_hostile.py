"""A Vault address that answers as no Vault would: a redirect to another host, a trickle,
an endless body, 5xx on a request that creates something, damaged JSON. Each ends in one
line within the configured limits; the token never leaves the configured host."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from secretd.backends.vault import VaultProvider
from secretd.backends.vault_settings import VaultSettings
from secretd.errors import ProviderError, SecretdError
from secretd.refs import parse_ref
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
    sequence,
    trickle,
)

TOKEN = "s.hostile-test-token"
READ = "GET /v1/secret/data/app"
ISSUE = "POST /v1/pki/issue/web"
REF = parse_ref("vault:secret/app#password")
GOOD = answer({"data": {"data": {"password": "pw"}, "metadata": {"version": 3}}})


def stock(server: HostileServer) -> HostileServer:
    """What a real Vault answers for a token lookup, the mounts and one KV v2 secret."""
    server.routes.update(
        {
            "GET /v1/auth/token/lookup-self": answer({"data": {"ttl": 0}}),
            "GET /v1/sys/internal/ui/mounts/secret/app": answer(
                {"data": {"type": "kv", "path": "secret/", "options": {"version": "2"}}}
            ),
            "GET /v1/sys/internal/ui/mounts/pki/issue/web": answer(
                {"data": {"type": "pki", "path": "pki/"}}
            ),
            READ: GOOD,
        }
    )
    return server


@pytest.fixture
def vault() -> Iterator[HostileServer]:
    with hostile_server() as server:
        yield stock(server)


@pytest.fixture
def elsewhere() -> Iterator[HostileServer]:
    """Another host (another port is another origin) that would answer anything."""
    with hostile_server() as server:
        server.fallback = GOOD
        yield server


def provider(server: HostileServer, **settings: Any) -> VaultProvider:
    return VaultProvider(
        VaultSettings.load({"address": server.url, "token": TOKEN, **settings}, {})
    )


def test_redirect_to_another_host_sends_it_nothing(
    vault: HostileServer, elsewhere: HostileServer
) -> None:
    vault.routes[READ] = redirect(f"{elsewhere.url}/v1/secret/data/app?x=1")
    with pytest.raises(ProviderError) as caught:
        provider(vault).get(REF)
    assert str(caught.value) == (
        f"vault at {vault.url} redirected the request for secret/app to {elsewhere.url}; "
        f"secretd sends its token to {vault.url} only: set VAULT_ADDR or address in "
        "[providers.vault] to the server that answers"
    )
    assert elsewhere.seen == []
    assert vault.hits(READ) == 1


def test_redirect_at_the_first_request_from_the_cli(
    secretd: Runner, vault: HostileServer, elsewhere: HostileServer
) -> None:
    vault.routes["GET /v1/auth/token/lookup-self"] = redirect(elsewhere.url + "/v1/x", 301)
    env = {**os.environ, "VAULT_ADDR": vault.url, "VAULT_TOKEN": TOKEN}
    result = secretd("run", "--secret", "db=vault:secret/app#password", "--", "true", env=env)
    assert (result.returncode, result.stdout) == (125, "")
    assert result.stderr == (
        f"secretd: vault at {vault.url} redirected the request for the token's own lookup to "
        f"{elsewhere.url}; secretd sends its token to {vault.url} only: set VAULT_ADDR or "
        "address in [providers.vault] to the server that answers\n"
    )
    assert elsewhere.seen == []


def test_redirect_on_the_same_host_is_followed(vault: HostileServer) -> None:
    vault.routes[READ] = redirect("/v1/secret/data/moved")
    vault.routes["GET /v1/secret/data/moved"] = GOOD
    assert provider(vault).get(REF).value == b"pw"
    assert [s.headers.get("X-Vault-Token") for s in vault.seen] == [TOKEN] * len(vault.seen)


TOO_BIG = (
    "answered more than 4 KiB for secret/app: "
    "raise max_response_size in [providers.vault] if such answers are expected"
)
SLOW = "did not answer within 1s: check the server, or raise timeout in [providers.vault]"
CUT_OFF: dict[str, tuple[Reply, dict[str, int], str]] = {
    "trickle": (trickle(0.1), {"timeout": 1}, SLOW),
    "endless, announced": (endless(True), {"max_response_size": 4096}, TOO_BIG),
    "endless, unannounced": (endless(False), {"max_response_size": 4096}, TOO_BIG),
}


@pytest.mark.parametrize("case", list(CUT_OFF))
def test_a_trickle_or_an_endless_body_is_cut_off(vault: HostileServer, case: str) -> None:
    reply, settings, message = CUT_OFF[case]
    vault.routes[READ] = reply
    client = provider(vault, **settings)
    refused_quickly(lambda: client.get(REF), f"vault at {vault.url} {message}")


def test_a_post_that_fails_with_503_is_sent_once(vault: HostileServer) -> None:
    vault.routes[ISSUE] = answer({"errors": ["try later"]}, 503)
    with pytest.raises(ProviderError) as caught:
        provider(vault, retries=2).get(parse_ref("vault:pki/issue/web?common_name=a#certificate"))
    assert str(caught.value) == (
        f"vault at {vault.url} is sealed or unavailable (HTTP 503): "
        "unseal it, or wait for an active node"
    )
    assert vault.hits(ISSUE) == 1


def test_a_read_that_fails_with_503_once_is_retried(vault: HostileServer) -> None:
    vault.routes[READ] = sequence(answer({"errors": []}, 503), GOOD)
    assert provider(vault, retries=2).get(REF).value == b"pw"
    assert vault.hits(READ) == 2


def test_a_read_that_keeps_failing_is_tried_three_times(vault: HostileServer) -> None:
    vault.routes[READ] = answer({"errors": ["boom"]}, 500)
    with pytest.raises(ProviderError) as caught:
        provider(vault, retries=2).get(REF)
    assert str(caught.value) == f"vault at {vault.url} failed on secret/app (InternalServerError)"
    assert vault.hits(READ) == 3


DAMAGED: dict[str, tuple[str, Reply, str]] = {
    "data not an object": (READ, answer({"data": 5}), "data is not an object"),
    "data.data a number": (
        READ,
        answer({"data": {"data": 5, "metadata": {"version": 1}}}),
        "data.data is not an object",
    ),
    "no metadata": (
        READ,
        answer({"data": {"data": {"password": "x"}}}),
        "data.metadata is not an object",
    ),
    "version a list": (
        READ,
        answer({"data": {"data": {"password": "x"}, "metadata": {"version": [1]}}}),
        "data.metadata.version is not a number",
    ),
    "version infinite": (
        READ,
        raw(b'{"data": {"data": {"password": "x"}, "metadata": {"version": Infinity}}}'),
        "data.metadata.version is not a number",
    ),
    "mount type missing": (
        "GET /v1/sys/internal/ui/mounts/secret/app",
        answer({"data": {"path": "secret/"}}),
        "data.type is not a string",
    ),
    "mount elsewhere": (
        "GET /v1/sys/internal/ui/mounts/secret/app",
        answer({"data": {"type": "kv", "path": "other/"}}),
        "data.path is not a mount holding secret/app",
    ),
    "kv version 7": (
        "GET /v1/sys/internal/ui/mounts/secret/app",
        answer({"data": {"type": "kv", "path": "secret/", "options": {"version": "7"}}}),
        "data.options.version is not 1 or 2",
    ),
    "lookup ttl text": (
        "GET /v1/auth/token/lookup-self",
        answer({"data": {"ttl": "soon"}}),
        "data.ttl is not a number",
    ),
}


@pytest.mark.parametrize("case", list(DAMAGED))
def test_damaged_answers_are_one_line(vault: HostileServer, case: str) -> None:
    route, reply, what = DAMAGED[case]
    vault.routes[route] = reply
    with pytest.raises(ProviderError) as caught:
        provider(vault).get(REF)
    assert str(caught.value).endswith(
        f": {what}: check that VAULT_ADDR or address in [providers.vault] is a Vault server"
    )
    assert str(caught.value).startswith("vault sent a damaged answer for ")


@pytest.mark.parametrize(
    ("reply", "what"),
    [
        (
            raw(b"<html>proxy login</html>", content_type="text/html"),
            "something other than a JSON object",
        ),
        (raw(b"[1, 2]"), "something other than a JSON object"),
        (raw(b"[" * 100_000 + b"]" * 100_000), "JSON nested too deeply"),
    ],
    ids=["html", "a list", "deep nesting"],
)
def test_answers_that_are_no_json_object_are_one_line(
    vault: HostileServer, reply: Reply, what: str
) -> None:
    vault.routes[READ] = reply
    with pytest.raises(SecretdError) as caught:
        provider(vault).get(REF)
    assert str(caught.value) == (
        f"vault at {vault.url} answered the request for secret/app with {what}: "
        "check that VAULT_ADDR or address in [providers.vault] is a Vault server"
    )


def test_error_answer_hvac_cannot_read_is_one_line(vault: HostileServer) -> None:
    vault.routes["GET /v1/auth/token/lookup-self"] = raw(b"0", 400)
    with pytest.raises(ProviderError) as caught:
        provider(vault).get(REF)
    assert str(caught.value) == (
        f"vault at {vault.url} answered the request for the token's own lookup with an error "
        "hvac cannot read: check that VAULT_ADDR or address in [providers.vault] is a Vault "
        "server"
    )


def test_the_deadline_holds_through_an_http_proxy(
    vault: HostileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The proxy from the environment gets the same bounded connections."""
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", vault.url)
    vault.routes["GET /v1/auth/token/lookup-self"] = trickle(0.1)
    address = "http://vault.invalid:8200"
    settings = VaultSettings.load({"address": address, "token": TOKEN, "timeout": 1}, {})
    started = time.monotonic()
    with pytest.raises(ProviderError, match=f"^vault at {address} did not answer within 1s"):
        VaultProvider(settings).get(REF)
    assert time.monotonic() - started < 5
    assert vault.seen[0].headers.get("X-Vault-Token") == TOKEN  # it went through the proxy
