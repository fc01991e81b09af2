"""Key/value secrets, KV v1 and v2, read from a real OpenBao through the provider."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from secretd.errors import SecretNotFound, UsageError
from secretd.refs import parse_ref
from tests.vault.servers import ROOT_TOKEN, BaoServer, ProviderFactory, broker_for

pytestmark = pytest.mark.vault


@pytest.fixture
def app(openbao: BaoServer, unique: str) -> str:
    """secret/<unique>: version 1 then version 2 of {password, user}."""
    kv = openbao.client().secrets.kv.v2
    kv.create_or_update_secret(unique, secret={"password": "pw-one", "user": "alice"})
    kv.create_or_update_secret(unique, secret={"password": "pw-two", "user": "alice"})
    return f"secret/{unique}"


def test_kv2_field_is_the_latest_value(provider: ProviderFactory, app: str) -> None:
    secret = provider().get(parse_ref(f"db=vault:{app}#password"))
    assert (secret.name, secret.value, secret.version) == ("db", b"pw-two", "2")
    assert secret.lease_id is None
    assert "pw-two" not in repr(secret)


def test_kv2_pinned_version_is_the_older_value(provider: ProviderFactory, app: str) -> None:
    vault = provider()
    for text in (f"db=vault:{app}#password?version=1", f"db=vault:{app}?version=1#password"):
        secret = vault.get(parse_ref(text))
        assert (secret.value, secret.version) == (b"pw-one", "1")


def test_kv2_version_follows_writes_and_pins(
    provider: ProviderFactory, app: str, openbao: BaoServer
) -> None:
    vault = provider()
    latest = parse_ref(f"db=vault:{app}#password")
    assert vault.version(latest) == "2"
    openbao.client().secrets.kv.v2.create_or_update_secret(
        app.removeprefix("secret/"), secret={"password": "pw-three", "user": "alice"}
    )
    assert vault.version(latest) == "3"
    assert vault.get(latest).value == b"pw-three"
    assert vault.version(parse_ref(f"db=vault:{app}#password?version=1")) == "1"


def test_kv2_missing_version_is_not_found(provider: ProviderFactory, app: str) -> None:
    with pytest.raises(SecretNotFound) as caught:
        provider().get(parse_ref(f"db=vault:{app}#password?version=9"))
    assert str(caught.value) == f"vault has nothing at {app}?version=9: check the path " + repr(
        app.replace("secret/", "secret/data/", 1)
    )


def test_missing_field_lists_the_field_names_only(provider: ProviderFactory, app: str) -> None:
    with pytest.raises(SecretNotFound) as caught:
        provider().get(parse_ref(f"db=vault:{app}#pasword"))
    assert str(caught.value) == (
        f"vault secret {app} has no field 'pasword': its fields are: password, user"
    )
    assert "pw-" not in str(caught.value) and "alice" not in str(caught.value)


def test_multi_key_secret_without_field_names_the_keys(provider: ProviderFactory, app: str) -> None:
    with pytest.raises(UsageError) as caught:
        provider().get(parse_ref(f"db=vault:{app}"))
    assert str(caught.value) == (
        f"vault secret {app} has 2 fields: name one with vault:{app}#FIELD; "
        "its fields are: password, user"
    )
    assert caught.value.exit_code == 2


def test_single_key_secret_needs_no_field(
    provider: ProviderFactory, openbao: BaoServer, unique: str
) -> None:
    openbao.client().secrets.kv.v2.create_or_update_secret(unique, secret={"token": "only"})
    assert provider().get(parse_ref(f"vault:secret/{unique}")).value == b"only"


def test_non_string_values_are_json(
    provider: ProviderFactory, openbao: BaoServer, unique: str
) -> None:
    openbao.client().secrets.kv.v2.create_or_update_secret(
        unique, secret={"port": 5432, "tls": True, "hosts": ["a", "b"], "name": "ünïcode"}
    )
    vault = provider()
    assert vault.get(parse_ref(f"p=vault:secret/{unique}#port")).value == b"5432"
    assert vault.get(parse_ref(f"p=vault:secret/{unique}#tls")).value == b"true"
    assert json.loads(vault.get(parse_ref(f"p=vault:secret/{unique}#hosts")).value) == ["a", "b"]
    assert vault.get(parse_ref(f"p=vault:secret/{unique}#name")).value == "ünïcode".encode()


def test_several_fields_make_a_tree(provider: ProviderFactory, app: str) -> None:
    secret = provider().get(parse_ref(f"login=vault:{app}#user,password"))
    assert secret.tree == {"user": b"alice", "password": b"pw-two"}
    assert secret.version == "2"
    assert "alice" not in repr(secret)


def test_kv1_value_and_content_version(
    provider: ProviderFactory, openbao: BaoServer, unique: str
) -> None:
    kv1 = openbao.client().secrets.kv.v1
    kv1.create_or_update_secret(unique, secret={"password": "v1-one"}, mount_point="kv1")
    vault = provider()
    ref = parse_ref(f"db=vault:kv1/{unique}#password")
    first = vault.get(ref)
    assert first.value == b"v1-one"
    assert vault.version(ref) == first.version
    kv1.create_or_update_secret(unique, secret={"password": "v1-two"}, mount_point="kv1")
    assert vault.version(ref) != first.version
    assert vault.get(ref).value == b"v1-two"
    assert "v1-" not in first.version


def test_kv1_has_no_versions(provider: ProviderFactory, openbao: BaoServer, unique: str) -> None:
    openbao.client().secrets.kv.v1.create_or_update_secret(
        unique, secret={"a": "b"}, mount_point="kv1"
    )
    with pytest.raises(UsageError) as caught:
        provider().get(parse_ref(f"db=vault:kv1/{unique}#a?version=1"))
    assert str(caught.value) == (
        "secret 'db': 'version' is not an option of the KV v1 mount kv1/: KV v1 keeps no versions"
    )


@pytest.mark.parametrize("version", ["0", "-1", "latest"])
def test_bad_version_is_a_usage_error(provider: ProviderFactory, app: str, version: str) -> None:
    with pytest.raises(UsageError, match=f"version '{version}' is not a positive number"):
        provider().get(parse_ref(f"db=vault:{app}#password?version={version}"))


def test_missing_secret_is_not_found(provider: ProviderFactory, unique: str) -> None:
    with pytest.raises(SecretNotFound, match=f"vault has nothing at secret/{unique}"):
        provider().get(parse_ref(f"db=vault:secret/{unique}#password"))


def test_mount_is_asked_about_once(provider: ProviderFactory, openbao: BaoServer, app: str) -> None:
    """KV v1/v2 is learnt from Vault's mount table, once per mount (the audit log shows)."""
    vault = provider()
    for version in ("", "?version=1", ""):
        vault.get(parse_ref(f"db=vault:{app}#password{version}"))
    seen = openbao.requests()
    assert seen.count(("read", f"sys/internal/ui/mounts/{app}")) == 1
    assert seen.count(("read", app.replace("secret/", "secret/data/", 1))) == 3


def test_broker_finds_the_provider_by_scheme(openbao: BaoServer, app: str, tmp_path: Path) -> None:
    broker = broker_for({"address": openbao.address, "token": ROOT_TOKEN}, tmp_path)
    refs = [parse_ref(f"db=vault:{app}#password"), parse_ref(f"old=vault:{app}#password?version=1")]
    assert [s.value for s in broker.resolve(refs)] == [b"pw-two", b"pw-one"]
