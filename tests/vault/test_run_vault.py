"""``secretd run`` with Vault references, end to end: the real CLI, a real OpenBao."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.conftest import Runner
from tests.vault.servers import (
    ROOT_TOKEN,
    BaoServer,
    is_revoked,
    leases,
    policy_token,
    read_policy,
)

pytestmark = pytest.mark.vault

PEM = re.compile(rb"-----BEGIN ([A-Z ]+)-----.*?-----END \1-----\n?", re.DOTALL)
TLS = "tls=vault:pki/issue/web?common_name=a.example.com&ttl={ttl}#certificate,private_key"
SHOW_TLS = "cat /run/secrets/tls/certificate /run/secrets/tls/private_key"


@pytest.fixture
def app(openbao: BaoServer, unique: str) -> str:
    kv = openbao.client().secrets.kv.v2
    kv.create_or_update_secret(unique, secret={"password": "pw-one"})
    kv.create_or_update_secret(unique, secret={"password": "pw-two"})
    return f"secret/{unique}"


def write_config(directory: Path, address: str, token: str = ROOT_TOKEN) -> None:
    (directory / "secretd.toml").write_text(
        f'[providers.vault]\naddress = "{address}"\ntoken = "{token}"\n'
    )


def pairs(output: str | bytes) -> list[tuple[x509.Certificate, bool]]:
    """(certificate, whether the key after it belongs to it) for each cert+key printed."""
    assert isinstance(output, bytes)  # run with text=False
    blocks = [m.group(0) for m in PEM.finditer(output)]
    found = []
    for cert_pem, key_pem in zip(blocks[::2], blocks[1::2], strict=True):
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
        found.append((cert, cert.public_key() == key.public_key()))
    return found


def test_value_from_secretd_toml(
    secretd: Runner, openbao: BaoServer, app: str, tmp_path: Path
) -> None:
    write_config(tmp_path, openbao.address)
    result = secretd("run", "--secret", f"db=vault:{app}#password", "--", "cat", "/run/secrets/db")
    assert (result.returncode, result.stdout, result.stderr) == (0, "pw-two", "")


def test_pinned_version_from_vault_environment(
    secretd: Runner, openbao: BaoServer, app: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAULT_ADDR", openbao.address)
    monkeypatch.setenv("VAULT_TOKEN", ROOT_TOKEN)
    result = secretd(
        "run", "--secret", f"old=vault:{app}#password?version=1",
        "--secret", f"new=vault:{app}#password",
        "--", "sh", "-c", "cat /run/secrets/old; echo; cat /run/secrets/new",
    )  # fmt: skip
    assert (result.returncode, result.stdout, result.stderr) == (0, "pw-one\npw-two", "")


def test_certificate_and_key_are_two_files_revoked_after_the_run(
    secretd: Runner, openbao: BaoServer, tmp_path: Path
) -> None:
    write_config(tmp_path, openbao.address)
    before = leases(openbao, "pki/issue/web/")
    result = secretd(
        "run", "--secret", TLS.format(ttl="1h"), "--", "sh", "-c", SHOW_TLS, text=False
    )
    assert result.returncode == 0, result.stderr
    ((cert, matches),) = pairs(result.stdout)
    assert matches and cert.subject.rfc4514_string() == "CN=a.example.com"
    assert leases(openbao, "pki/issue/web/") == before
    assert is_revoked(openbao, cert)


def test_certificate_is_reissued_before_its_lease_ends(
    secretd: Runner, openbao: BaoServer, tmp_path: Path
) -> None:
    """PKI leases cannot be renewed: at 2/3 of the short lease a new pair replaces both
    files at once, and every lease taken is revoked (each issue has its revoke)."""
    write_config(tmp_path, openbao.address)
    before = leases(openbao, "pki/issue/web/")
    seen = len(openbao.requests())
    result = secretd(
        "run", "--secret", TLS.format(ttl="3s"),
        "--", "sh", "-c", f"{SHOW_TLS}; sleep 3; {SHOW_TLS}", text=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (first, first_ok), (second, second_ok) = pairs(result.stdout)
    assert first_ok and second_ok
    assert first.serial_number != second.serial_number
    during = openbao.requests()[seen:]
    issued = during.count(("update", "pki/issue/web"))
    assert issued >= 2
    assert during.count(("update", "sys/leases/revoke")) == issued
    assert leases(openbao, "pki/issue/web/") == before


def test_debug_output_holds_no_token_or_value(
    secretd: Runner, openbao: BaoServer, app: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = policy_token(openbao, app.replace("/", "-"), read_policy(f"secret/data/{app[7:]}"))
    monkeypatch.setenv("VAULT_ADDR", openbao.address)
    monkeypatch.setenv("VAULT_TOKEN", token["token"])
    result = secretd(
        "--debug", "run", "--secret", f"db=vault:{app}#password", "--", "cat", "/run/secrets/db"
    )
    assert (result.returncode, result.stdout) == (0, "pw-two")
    assert f"vault: GET secret/data/{app[7:]}" in result.stderr
    for leaked in (token["token"], token["accessor"], "pw-two", "pw-one"):
        assert leaked not in result.stderr


def test_command_inherits_no_provider_credentials(
    secretd: Runner, openbao: BaoServer, app: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """secretd reads credentials from its environment; the command gets none of them,
    whichever provider the run used, unless one is passed on purpose with -e."""
    monkeypatch.setenv("VAULT_ADDR", openbao.address)
    monkeypatch.setenv("VAULT_TOKEN", ROOT_TOKEN)
    credentials = {
        "BAO_TOKEN": "bao-token-canary", "VAULT_ROLE_ID": "role-id-canary",
        "VAULT_SECRET_ID": "secret-id-canary", "AWS_ACCESS_KEY_ID": "AKIACANARY",
        "AWS_SECRET_ACCESS_KEY": "aws-secret-canary", "AWS_SESSION_TOKEN": "session-canary",
        "AWS_SECURITY_TOKEN": "security-canary", "SECRETD_PASSPHRASE": "passphrase-canary",
    }  # fmt: skip
    for name, value in credentials.items():
        monkeypatch.setenv(name, value)
    result = secretd(
        "run", "--secret", f"db=vault:{app}#password", "-e", "AWS_SESSION_TOKEN",
        "--", "cat", "/proc/self/environ",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    environ = dict(item.partition("=")[::2] for item in result.stdout.split("\0") if item)
    assert environ["VAULT_ADDR"] == openbao.address  # where, not who: inherited
    assert environ["AWS_SESSION_TOKEN"] == "session-canary"  # -e NAME passes one on purpose
    leaked = sorted(set(environ) & {*credentials, "VAULT_TOKEN"} - {"AWS_SESSION_TOKEN"})
    assert leaked == []
    assert ROOT_TOKEN not in environ.values()
