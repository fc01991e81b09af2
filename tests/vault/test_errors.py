"""What a user sees when Vault says no, is away, sealed or behind TLS: one line each,
naming the path and the identity, never a token or a value."""

from __future__ import annotations

import logging
import socket
import time
from pathlib import Path

import hvac.exceptions
import pytest

from secretd.backends.vault import VaultProvider
from secretd.backends.vault_auth import RequestRejected
from secretd.backends.vault_settings import VaultSettings
from secretd.errors import AccessDenied, ProviderError
from secretd.refs import parse_ref
from tests.support.waiting import free_port
from tests.vault.servers import (
    BaoServer,
    ProviderFactory,
    approle,
    policy_token,
    read_policy,
)

pytestmark = pytest.mark.vault


@pytest.fixture
def app(openbao: BaoServer, unique: str) -> str:
    kv = openbao.client().secrets.kv.v2
    kv.create_or_update_secret(f"{unique}/open", secret={"password": "open-value"})
    kv.create_or_update_secret(f"{unique}/closed", secret={"password": "closed-value"})
    return unique


def test_forbidden_path_names_path_and_auth(
    provider: ProviderFactory, openbao: BaoServer, app: str
) -> None:
    token = policy_token(openbao, app, read_policy(f"secret/data/{app}/open"))
    vault = provider(token=token["token"])
    assert vault.get(parse_ref(f"vault:secret/{app}/open#password")).value == b"open-value"
    with pytest.raises(AccessDenied) as caught:
        vault.get(parse_ref(f"vault:secret/{app}/closed#password"))
    assert str(caught.value) == (
        f"vault denied access to secret/{app}/closed (token auth): "
        f"a policy of this identity must grant 'read' on 'secret/data/{app}/closed'"
    )
    assert token["token"] not in str(caught.value)


def test_forbidden_path_with_approle(
    provider: ProviderFactory, openbao: BaoServer, app: str, tmp_path: Path
) -> None:
    role_id = approle(openbao, app, read_policy(f"secret/data/{app}/open"))
    secret_id = openbao.client().write_data(f"auth/approle/role/{app}/secret-id")["data"]
    (tmp_path / "secret_id").write_text(secret_id["secret_id"])
    vault = provider(role_id=role_id, secret_id_file=str(tmp_path / "secret_id"))
    with pytest.raises(AccessDenied) as caught:
        vault.get(parse_ref(f"vault:secret/{app}/closed#password"))
    assert str(caught.value).startswith(
        f"vault denied access to secret/{app}/closed (approle auth): "
    )


def test_no_mount_there(provider: ProviderFactory) -> None:
    with pytest.raises(AccessDenied) as caught:
        provider().get(parse_ref("vault:nothere/app#password"))
    assert str(caught.value) == (
        "vault denied access to nothere/app (token auth): no secrets engine is mounted there, "
        "or no policy of this identity grants access to it"
    )


def test_stopped_server_is_unreachable_after_bounded_retries(
    provider: ProviderFactory, own_openbao: BaoServer
) -> None:
    own_openbao.client().secrets.kv.v2.create_or_update_secret("app", secret={"password": "x"})
    vault = provider(own_openbao)
    ref = parse_ref("vault:secret/app#password")
    assert vault.get(ref).value == b"x"
    own_openbao.stop()
    started = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        vault.get(ref)
    elapsed = time.monotonic() - started
    assert str(caught.value) == (
        f"vault at {own_openbao.address} unreachable: check that the server runs and "
        "VAULT_ADDR or address in [providers.vault]"
    )
    assert 0.4 < elapsed < 3  # two retries: at once, then 0.5 s later

    started = time.monotonic()
    with pytest.raises(ProviderError, match="unreachable"):
        provider(own_openbao, retries=0).get(ref)
    assert time.monotonic() - started < 0.5


def test_nothing_listening(provider: ProviderFactory) -> None:
    address = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ProviderError, match=f"^vault at {address} unreachable: "):
        provider(address=address, retries=0).get(parse_ref("vault:secret/app#password"))


def test_silent_server_times_out(provider: ProviderFactory) -> None:
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        address = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(ProviderError) as caught:
            provider(address=address, timeout=0.3).get(parse_ref("vault:secret/app#password"))
    assert str(caught.value) == (
        f"vault at {address} did not answer within 0.3s: "
        "check the server, or raise timeout in [providers.vault]"
    )
    assert time.monotonic() - started < 3  # 3 tries of 0.3 s, 0.75 s of backoff


def test_sealed_server(provider: ProviderFactory, own_openbao: BaoServer) -> None:
    own_openbao.client().sys.seal()
    with pytest.raises(ProviderError) as caught:
        provider(own_openbao, retries=0).get(parse_ref("vault:secret/app#password"))
    assert str(caught.value) == (
        f"vault at {own_openbao.address} is sealed or unavailable (HTTP 503): "
        "unseal it, or wait for an active node"
    )


def test_tls_needs_the_ca(provider: ProviderFactory, tls_openbao: BaoServer) -> None:
    tls_openbao.client().secrets.kv.v2.create_or_update_secret("app", secret={"password": "x"})
    ref = parse_ref("vault:secret/app#password")
    with pytest.raises(ProviderError) as caught:
        provider(tls_openbao, retries=0).get(ref)
    assert str(caught.value) == (
        f"vault at {tls_openbao.address}: TLS verification failed: "
        "set VAULT_CACERT or cacert in [providers.vault]"
    )
    assert provider(tls_openbao, cacert=str(tls_openbao.ca)).get(ref).value == b"x"
    assert provider(tls_openbao, skip_verify=True).get(ref).value == b"x"


def test_vault_refusal_quotes_vault_without_credentials(provider: ProviderFactory) -> None:
    with pytest.raises(RequestRejected) as caught:
        provider().get(parse_ref("vault:pki/issue/web#certificate"))
    assert str(caught.value).startswith("vault rejected the request for pki/issue/web: ")
    assert "common_name" in str(caught.value)


def test_credentials_echoed_by_vault_are_blanked() -> None:
    """A safety net: should Vault ever quote a credential in an error, it is cut out."""

    class EchoingAdapter:
        def request(self, method: str, url: str, **kwargs: object) -> None:
            raise hvac.exceptions.InvalidRequest(errors=["token s.TOPSECRET is odd"])

    class Client:
        token: str | None = None
        adapter = EchoingAdapter()

    vault = VaultProvider(
        VaultSettings(address="http://vault.invalid", token="s.TOPSECRET"), Client()
    )
    with pytest.raises(RequestRejected) as caught:
        vault.get(parse_ref("vault:secret/app#password"))
    assert str(caught.value) == (
        "vault rejected the request for the token's own lookup: token <redacted> is odd"
    )


def test_debug_logs_hold_no_token_or_value(
    provider: ProviderFactory,
    openbao: BaoServer,
    app: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    role_id = approle(openbao, app, read_policy(f"secret/data/{app}/open"))
    secret_id = openbao.client().write_data(f"auth/approle/role/{app}/secret-id")["data"]
    (tmp_path / "secret_id").write_text(secret_id["secret_id"])
    vault = provider(role_id=role_id, secret_id_file=str(tmp_path / "secret_id"))
    secret = vault.get(parse_ref(f"vault:secret/{app}/open#password"))
    token = vault.session._client.token
    assert "vault: GET secret/data/" in caplog.text
    for credential in (token, secret_id["secret_id"], "open-value", role_id):
        assert credential not in caplog.text
    assert "open-value" not in repr(secret)
