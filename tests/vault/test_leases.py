"""Dynamic secrets from a real OpenBao: PKI certificates and PostgreSQL credentials with
leases that are renewed, refused near their max TTL, and revoked."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from secretd.backends.vault import ISSUED
from secretd.errors import SecretNotFound
from secretd.refs import parse_ref
from tests.vault.servers import (
    ROOT_TOKEN,
    BaoServer,
    Postgres,
    ProviderFactory,
    broker_for,
    is_revoked,
    lease_exists,
    leases,
)

pytestmark = pytest.mark.vault

CERT = "tls=vault:pki/issue/web?common_name=a.example.com&ttl=1h"


def test_certificate_and_key_arrive_together_with_a_lease(
    provider: ProviderFactory, openbao: BaoServer
) -> None:
    vault = provider()
    secret = vault.get(parse_ref(f"{CERT}#certificate,private_key"))
    assert secret.tree is not None and set(secret.tree) == {"certificate", "private_key"}
    cert = x509.load_pem_x509_certificate(secret.tree["certificate"])
    key = serialization.load_pem_private_key(secret.tree["private_key"], password=None)
    assert cert.public_key() == key.public_key()
    assert cert.subject.rfc4514_string() == "CN=a.example.com"
    assert secret.lease_id and secret.lease_id.startswith("pki/issue/web/")
    assert 3500 < secret.lease_duration <= 3600
    assert "PRIVATE" not in repr(secret)
    assert lease_exists(openbao, secret.lease_id)

    # PKI leases cannot be renewed: the caller is told to issue a new certificate.
    assert secret.renewable is False
    assert vault.renew(secret) is None

    vault.revoke(secret)
    assert not lease_exists(openbao, secret.lease_id)
    assert is_revoked(openbao, cert)


def test_whole_answer_as_json_or_one_field(provider: ProviderFactory) -> None:
    vault = provider()
    whole = vault.get(parse_ref(CERT))
    assert {"certificate", "private_key", "serial_number", "expiration"} <= set(
        json.loads(whole.value)
    )
    one = vault.get(parse_ref(f"{CERT}#certificate"))
    assert one.value.startswith(b"-----BEGIN CERTIFICATE-----")
    assert one.tree is None
    for secret in (whole, one):
        vault.revoke(secret)


def test_missing_field_of_an_issued_secret(provider: ProviderFactory) -> None:
    with pytest.raises(SecretNotFound, match="has no field 'cert': its fields are: ca_chain, "):
        provider().get(parse_ref(f"{CERT}#cert"))


def test_version_of_an_issued_secret_issues_nothing(
    provider: ProviderFactory, openbao: BaoServer
) -> None:
    vault = provider()
    before = openbao.requests().count(("update", "pki/issue/web"))
    assert vault.version(parse_ref(f"{CERT}#certificate")) == ISSUED
    assert openbao.requests().count(("update", "pki/issue/web")) == before


def test_database_credentials_renew_then_run_out(
    provider: ProviderFactory, openbao: BaoServer, database: str, postgres: Postgres
) -> None:
    vault = provider()
    secret = vault.get(parse_ref(f"db=vault:{database}#username,password"))
    assert secret.tree is not None and secret.lease_id is not None
    username, password = secret.tree["username"].decode(), secret.tree["password"].decode()
    assert postgres.can_login(username, password)
    assert (secret.lease_duration, secret.renewable) == (4, True)

    renewed = vault.renew(secret)
    assert renewed is not None and renewed.lease_duration == 4
    assert renewed.tree == secret.tree and renewed.lease_id == secret.lease_id
    assert openbao.client().sys.read_lease(secret.lease_id)["data"]["last_renewal"]

    time.sleep(2)  # max_ttl is 5 s: a 4 s renewal no longer fits
    assert vault.renew(renewed) is None
    assert lease_exists(openbao, secret.lease_id)
    vault.revoke(secret)


def test_broker_release_revokes_and_drops_the_role(
    openbao: BaoServer, database: str, postgres: Postgres, tmp_path: Path
) -> None:
    broker = broker_for({"address": openbao.address, "token": ROOT_TOKEN}, tmp_path)
    refs = [parse_ref(f"db=vault:{database}#username,password")]
    (secret,) = broker.resolve(refs)
    assert secret.tree is not None and secret.lease_id is not None
    broker.release(refs, [secret])
    assert not lease_exists(openbao, secret.lease_id)
    assert not postgres.can_login(
        secret.tree["username"].decode(), secret.tree["password"].decode()
    )


def test_failed_resolve_leaves_no_lease(
    openbao: BaoServer, database: str, unique: str, tmp_path: Path
) -> None:
    broker = broker_for({"address": openbao.address, "token": ROOT_TOKEN}, tmp_path)
    before = leases(openbao, f"{database}/")
    refs = [parse_ref(f"db=vault:{database}#password"), parse_ref(f"x=vault:secret/{unique}#a")]
    with pytest.raises(SecretNotFound):
        broker.resolve(refs)
    assert leases(openbao, f"{database}/") == before
