"""The main job with the encrypted local store: a bare name resolves to `local:NAME`."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.root


def test_stored_secret_with_long_syntax(secretd) -> None:
    created = secretd("secret", "create", "api_key", "-", input="s3cr3t")
    assert created.returncode == 0, created.stderr
    result = secretd(
        "run",
        "--secret",
        "source=api_key,target=k,mode=0400,uid=1000",
        "--",
        "stat",
        "-c",
        "%a %u",
        "/run/secrets/k",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "400 1000\n"


def test_stored_secret_by_name(secretd) -> None:
    secretd("secret", "create", "api_key", "-", input="s3cr3t")
    result = secretd("run", "--secret", "api_key", "--", "cat", "/run/secrets/api_key")
    assert result.stdout == "s3cr3t"


def test_missing_stored_secret_names_the_store(secretd) -> None:
    result = secretd("run", "--secret", "nope", "--", "true")
    assert result.returncode == 125
    assert result.stderr.startswith("secretd: secret 'nope' not found in the local store")


def test_name_bound_in_secretd_toml(secretd, tmp_path) -> None:
    (tmp_path / ".env").write_text('export API_KEY="from dotenv"\n')
    (tmp_path / "secretd.toml").write_text(
        '[secrets.api_key]\nsource = "dotenv:.env#API_KEY"\nmode = "0400"\n'
    )
    result = secretd(
        "run",
        "--secret",
        "api_key",
        "--",
        "sh",
        "-c",
        "stat -c %a /run/secrets/api_key; cat /run/secrets/api_key",
    )
    assert result.stdout == "400\nfrom dotenv"
