"""``secretd run`` end to end with ``aws:`` and ``ssm:`` references and a real moto_server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.aws.servers import ACCESS_KEY, REGION, SECRET_KEY, Moto

pytestmark = [pytest.mark.aws, pytest.mark.root]

PASSWORD = "pw-4f9c2e7a-from-moto"
TREE_SECRET = "tree-9b1d-securestring"


def write_config(endpoint: str) -> None:
    """``./secretd.toml`` in the test's working directory, as a user would write it."""
    Path("secretd.toml").write_text(
        f'[providers.aws]\nendpoint_url = "{endpoint}"\nregion = "{REGION}"\n'
    )


@pytest.fixture
def stocked(moto: Moto) -> Moto:
    moto.client("secretsmanager").create_secret(
        Name="prod/db", SecretString=json.dumps({"password": PASSWORD, "user": "app"})
    )
    ssm = moto.client("ssm")
    ssm.put_parameter(Name="/app/prod/db/url", Value="postgres://db/app", Type="String")
    ssm.put_parameter(Name="/app/prod/db/password", Value=TREE_SECRET, Type="SecureString")
    ssm.put_parameter(Name="/app/prod/mode", Value="strict", Type="String")
    write_config(moto.url)
    return moto


def test_json_key_lands_in_run_secrets(secretd: Any, stocked: Moto) -> None:
    result = secretd("run", "--secret", "db=aws:prod/db#password", "--", "cat", "/run/secrets/db")
    assert (result.returncode, result.stdout, result.stderr) == (0, PASSWORD, "")


def test_ssm_tree_lands_as_files(secretd: Any, stocked: Moto) -> None:
    script = (
        "cd /run/secrets/conf && find . -type f | sort && "
        "cat db/url; echo; cat db/password; echo; cat mode"
    )
    result = secretd("run", "--secret", "conf=ssm:/app/prod/*", "--", "sh", "-c", script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "./db/password",
        "./db/url",
        "./mode",
        "postgres://db/app",
        TREE_SECRET,
        "strict",
    ]


@pytest.mark.parametrize(
    ("source", "line"),
    [
        (
            "aws:prod/nope#password",
            "secret 'db': AWS Secrets Manager has no secret 'prod/nope' in us-east-1: "
            "check the name and the region",
        ),
        (
            "aws:prod/db#pasword",
            "secret 'db': AWS Secrets Manager has no JSON key 'pasword' in secret 'prod/db' "
            "in us-east-1: keys present: password, user",
        ),
        (
            "ssm:/app/prod/nope",
            "secret 'db': AWS Systems Manager Parameter Store has no parameter "
            "'/app/prod/nope' in us-east-1: check the name and the region",
        ),
    ],
)
def test_missing_is_125_with_one_line(secretd: Any, stocked: Moto, source: str, line: str) -> None:
    result = secretd("run", "--secret", f"db={source}", "--", "echo", "ran")
    assert (result.returncode, result.stdout) == (125, "")
    assert result.stderr == f"secretd: {line}\n"


def test_key_on_a_plain_string_is_125(secretd: Any, moto: Moto) -> None:
    moto.client("secretsmanager").create_secret(Name="prod/token", SecretString=PASSWORD)
    write_config(moto.url)
    result = secretd("run", "--secret", "t=aws:prod/token#password", "--", "echo", "ran")
    assert result.returncode == 125
    assert result.stderr == (
        "secretd: secret 't': AWS Secrets Manager holds no JSON object (so no key 'password') "
        "in secret 'prod/token' in us-east-1: drop '#password' to get the whole value\n"
    )


def test_server_down_is_125(secretd: Any, aws_env: None, dead_url: str) -> None:
    write_config(dead_url)
    result = secretd("run", "--secret", "db=aws:prod/db#password", "--", "echo", "ran")
    assert (result.returncode, result.stdout) == (125, "")
    assert result.stderr.startswith(f"secretd: AWS Secrets Manager at {dead_url} unreachable")
    assert len(result.stderr.splitlines()) == 1


def test_debug_output_has_no_values_or_credentials(secretd: Any, stocked: Moto) -> None:
    refs = ["--secret", "db=aws:prod/db#password", "--secret", "conf=ssm:/app/prod/*"]
    ok = secretd("--debug", "run", *refs, "--", "test", "-s", "/run/secrets/db")
    failed = secretd("--debug", "run", "--secret", "db=aws:prod/db#nope", "--", "true")
    assert (ok.returncode, failed.returncode) == (0, 125)
    assert "secretd: debug:" in ok.stderr and "prod/db" in ok.stderr
    for output in (ok.stdout, ok.stderr, failed.stdout, failed.stderr):
        for leak in (PASSWORD, TREE_SECRET, SECRET_KEY, ACCESS_KEY):
            assert leak not in output
