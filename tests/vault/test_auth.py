"""Logging in to a real OpenBao: tokens, token files, AppRole (plain and response-wrapped
secret_ids), Kubernetes; token renewal and logging in again."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path

import pytest

from secretd.backends.vault import VaultProvider
from secretd.backends.vault_settings import VaultSettings
from secretd.config import Config
from secretd.errors import AccessDenied, ProviderError, UsageError
from secretd.refs import parse_ref
from tests.vault.servers import (
    ROOT_TOKEN,
    BaoServer,
    ProviderFactory,
    approle,
    policy_token,
    read_policy,
)

pytestmark = pytest.mark.vault


@pytest.fixture
def app(openbao: BaoServer, unique: str) -> str:
    openbao.client().secrets.kv.v2.create_or_update_secret(unique, secret={"password": "s3cr3t"})
    return unique


def test_vault_environment_overrides_the_config(
    openbao: BaoServer, app: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("VAULT_ADDR", openbao.address)
    monkeypatch.setenv("VAULT_TOKEN", ROOT_TOKEN)
    config = Config(
        state_dir=tmp_path,
        runtime_dir=tmp_path,
        providers={"vault": {"address": "http://127.0.0.1:9", "auth": "approle", "role_id": "x"}},
    )
    vault = VaultProvider.from_config(config)
    assert vault.session.settings.auth == "token"
    assert vault.get(parse_ref(f"vault:secret/{app}#password")).value == b"s3cr3t"


def test_token_file(provider: ProviderFactory, app: str, tmp_path: Path) -> None:
    (tmp_path / "token").write_text(ROOT_TOKEN + "\n")
    vault = provider(auth="token_file", token_file=str(tmp_path / "token"))
    assert vault.get(parse_ref(f"vault:secret/{app}#password")).value == b"s3cr3t"


def test_approle_reads_and_removes_the_secret_id_file(
    provider: ProviderFactory, openbao: BaoServer, app: str, tmp_path: Path
) -> None:
    role_id = approle(openbao, app, read_policy(f"secret/data/{app}"))
    (tmp_path / "role_id").write_text(role_id)
    secret_id_file = tmp_path / "secret_id"
    secret_id_file.write_text(
        openbao.client().write_data(f"auth/approle/role/{app}/secret-id")["data"]["secret_id"]
    )
    vault = provider(
        auth="approle",
        role_id_file=str(tmp_path / "role_id"),
        secret_id_file=str(secret_id_file),
        remove_secret_id_file=True,
    )
    assert vault.get(parse_ref(f"vault:secret/{app}#password")).value == b"s3cr3t"
    assert not secret_id_file.exists()


def _wrapped_secret_id(server: BaoServer, role: str, ttl: str) -> str:
    answer = server.client().write_data(f"auth/approle/role/{role}/secret-id", wrap_ttl=ttl)
    return str(answer["wrap_info"]["token"])


def test_wrapped_secret_id_unwraps_once(
    provider: ProviderFactory, openbao: BaoServer, app: str, tmp_path: Path
) -> None:
    role_id = approle(openbao, app, read_policy(f"secret/data/{app}"))
    wrapper = _wrapped_secret_id(openbao, app, "60s")
    (tmp_path / "wrapped").write_text(wrapper)
    settings = {
        "role_id": role_id,
        "secret_id_file": str(tmp_path / "wrapped"),
        "secret_id_wrapped": True,
    }
    ref = parse_ref(f"vault:secret/{app}#password")
    assert provider(**settings).get(ref).value == b"s3cr3t"

    with pytest.raises(AccessDenied) as caught:
        provider(**settings).get(ref)
    assert str(caught.value) == (
        f"vault could not unwrap the secret_id in {tmp_path / 'wrapped'}: the wrapping token "
        "was already used, has expired or is not a wrapping token: issue a new wrapped "
        "secret_id (someone else may have unwrapped this one)"
    )
    assert wrapper not in str(caught.value)


def test_expired_wrapper_fails_loudly(
    provider: ProviderFactory, openbao: BaoServer, app: str, tmp_path: Path
) -> None:
    role_id = approle(openbao, app, read_policy(f"secret/data/{app}"))
    (tmp_path / "wrapped").write_text(_wrapped_secret_id(openbao, app, "1s"))
    time.sleep(1.5)
    vault = provider(
        role_id=role_id, secret_id_file=str(tmp_path / "wrapped"), secret_id_wrapped=True
    )
    with pytest.raises(AccessDenied, match="could not unwrap the secret_id"):
        vault.get(parse_ref(f"vault:secret/{app}#password"))


def test_bad_secret_id_names_the_login(
    provider: ProviderFactory, openbao: BaoServer, app: str, tmp_path: Path
) -> None:
    role_id = approle(openbao, app, read_policy(f"secret/data/{app}"))
    (tmp_path / "secret_id").write_text("not-a-real-secret-id")
    vault = provider(role_id=role_id, secret_id_file=str(tmp_path / "secret_id"))
    with pytest.raises(AccessDenied) as caught:
        vault.get(parse_ref(f"vault:secret/{app}#password"))
    assert str(caught.value).startswith("vault approle login at auth/approle failed: ")
    assert "not-a-real-secret-id" not in str(caught.value)
    assert role_id not in str(caught.value)


def test_token_is_renewed_below_a_third_of_its_ttl(
    provider: ProviderFactory, openbao: BaoServer, app: str
) -> None:
    token = policy_token(openbao, app, read_policy(f"secret/data/{app}"), ttl="3s", renewable=True)
    vault = provider(token=token["token"])
    ref = parse_ref(f"vault:secret/{app}#password")
    vault.get(ref)
    time.sleep(2.2)
    vault.get(ref)
    ttl = openbao.client().auth.token.lookup_accessor(token["accessor"])["data"]["ttl"]
    assert ttl >= 2
    time.sleep(1.2)  # past the first TTL: the token lives on
    assert vault.get(ref).value == b"s3cr3t"


def test_logs_in_again_when_renewal_cannot_extend(
    provider: ProviderFactory, openbao: BaoServer, app: str, tmp_path: Path
) -> None:
    """The secret_id file is gone after the first login: the second one uses the copy
    kept in memory."""
    role_id = approle(
        openbao, app, read_policy(f"secret/data/{app}"), token_ttl="3s", token_max_ttl="3s"
    )
    secret_id_file = tmp_path / "secret_id"
    secret_id_file.write_text(
        openbao.client().write_data(f"auth/approle/role/{app}/secret-id")["data"]["secret_id"]
    )
    vault = provider(
        role_id=role_id, secret_id_file=str(secret_id_file), remove_secret_id_file=True
    )
    ref = parse_ref(f"vault:secret/{app}#password")
    vault.get(ref)
    logins = openbao.requests().count(("update", "auth/approle/login"))
    time.sleep(2.2)
    vault.get(ref)
    time.sleep(1.2)  # the first token is dead by now
    assert vault.get(ref).value == b"s3cr3t"
    assert openbao.requests().count(("update", "auth/approle/login")) == logins + 1


def test_kubernetes_login(
    provider: ProviderFactory,
    openbao: BaoServer,
    app: str,
    tmp_path: Path,
    token_review: tuple[str, set[str]],
) -> None:
    url, valid = token_review
    root = openbao.client()
    root.sys.enable_auth_method("kubernetes", path=app)
    ca = root.read("pki/cert/ca")["data"]["certificate"]
    root.write_data(
        f"auth/{app}/config",
        data={"kubernetes_host": url, "kubernetes_ca_cert": ca, "disable_local_ca_jwt": True},
    )
    root.sys.create_or_update_policy(name=app, policy=read_policy(f"secret/data/{app}"))
    root.write_data(
        f"auth/{app}/role/web",
        data={
            "bound_service_account_names": "app",
            "bound_service_account_namespaces": "default",
            "token_policies": app,
        },
    )
    jwt = _service_account_jwt()
    (tmp_path / "sa-token").write_text(jwt)
    settings = {"auth": "kubernetes", "role": "web", "auth_mount": app,
                "jwt_file": str(tmp_path / "sa-token")}  # fmt: skip
    ref = parse_ref(f"vault:secret/{app}#password")

    with pytest.raises(AccessDenied) as caught:
        provider(**settings).get(ref)
    assert str(caught.value).startswith(f"vault kubernetes login at auth/{app} failed")
    assert jwt not in str(caught.value)

    valid.add(jwt)
    assert provider(**settings).get(ref).value == b"s3cr3t"


def _service_account_jwt() -> str:
    """A JWT shaped like a Kubernetes service account token (OpenBao parses its claims;
    the TokenReview stand-in decides whether it is valid)."""

    def part(data: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    claims = {
        "iss": "kubernetes/serviceaccount",
        "sub": "system:serviceaccount:default:app",
        "kubernetes.io/serviceaccount/namespace": "default",
        "kubernetes.io/serviceaccount/service-account.name": "app",
        "kubernetes.io/serviceaccount/service-account.uid": "u-1",
    }
    signature = base64.urlsafe_b64encode(os.urandom(256)).rstrip(b"=").decode()
    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.{signature}"


def test_no_credentials_says_what_to_set(openbao: BaoServer) -> None:
    with pytest.raises(ProviderError) as caught:
        VaultSettings.load({"address": openbao.address}, {})
    assert str(caught.value) == (
        "vault token auth is missing token: set VAULT_TOKEN or token in [providers.vault]"
    )


def test_unknown_setting_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown setting 'adress' in \\[providers.vault\\]"):
        VaultSettings.load({"adress": "http://x", "token": "t"}, {})
