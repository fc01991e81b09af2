"""A CI job's environment: --clean-env, inherited variables named (never shown), warnings
that say where a variable came from, provider credentials that never travel, URL rules."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from secretd import exposure

TOKEN = "glpat-" + "Zx9Qw3Er5Ty7Ui1Op2As"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def env_of(stdout: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line)


def test_clean_env_passes_only_the_listed_variables(secretd, monkeypatch) -> None:
    for name, value in {
        "CI": "true", "CI_PROJECT_DIR": "/builds/app", "CI_JOB_TOKEN": TOKEN, "LANG": "C.UTF-8",
        "TZ": "UTC", "TERM": "dumb", "USER": "runner", "NPM_TOKEN": TOKEN, "OTHER": "x",
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET, "GITHUB_SHA": "abc", "GITHUB_ACTIONS": "true",
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    result = secretd("run", "--clean-env", "-e", "MODE=prod", "--", "env")
    assert result.returncode == 0, result.stderr
    names = set(env_of(result.stdout))
    expected = {"PATH", "HOME", "USER", "LANG", "TZ", "TERM", "CI", "CI_PROJECT_DIR", "MODE"}
    expected.add("GITHUB_ACTIONS")  # the marker, which a daemon needs to register masks
    assert names - {"PWD", "SHLVL", "_"} == expected  # the shell's own, set by env's caller
    assert TOKEN not in result.stdout and AWS_SECRET not in result.stdout


def test_provider_credentials_never_travel(secretd, monkeypatch, tmp_path: Path) -> None:
    """Not only Vault's: AWS keys too, whichever providers the run used (here none)."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "VAULT_TOKEN"):
        monkeypatch.setenv(name, AWS_SECRET)
    (tmp_path / "v").write_text("x")
    result = secretd("run", "--secret", f"v=file:{tmp_path / 'v'}", "--", "env")
    assert result.returncode == 0
    assert AWS_SECRET not in result.stdout
    passed = secretd("run", "-e", "AWS_ACCESS_KEY_ID", "--", "env")  # on purpose
    assert env_of(passed.stdout)["AWS_ACCESS_KEY_ID"] == AWS_SECRET


def test_ci_names_inherited_secrets_by_name_only(secretd, monkeypatch) -> None:
    """In a job's environment of known content (the developer's own may hold tokens)."""
    job = {k: v for k, v in os.environ.items() if k.startswith(("SECRETD_", "XDG_"))}
    job |= {"PATH": os.environ["PATH"], "HOME": os.environ["HOME"], "CI": "true"}
    job |= {"NPM_TOKEN": TOKEN, "PUBLIC_KEY_URL": "https://keys.example.com/app.pub"}
    job["DEPLOY_HOOK"] = "https://deploy:" + "hunter2hunter2@example.com/x"
    for name, value in job.items():
        monkeypatch.setenv(name, value)
    result = secretd("run", "--", "true", env=job)
    assert result.returncode == 0
    assert result.stderr == (
        "secretd: warning: inherited DEPLOY_HOOK, NPM_TOKEN look like secrets; the command and "
        "every process it starts can read them (/proc/<pid>/environ). Move one into a file "
        "with --secret NAME=env:VAR, or pass --clean-env.\n"
    )
    assert secretd("run", "--clean-env", "--", "true", env=job).stderr == ""
    moved = secretd("run", "--secret", "npm=env:NPM_TOKEN", "--", "true", env=job)
    assert "NPM_TOKEN" not in moved.stderr


def test_inherited_secrets_are_quiet_outside_strict_mode(secretd, monkeypatch) -> None:
    monkeypatch.setenv("NPM_TOKEN", TOKEN)
    assert secretd("run", "--", "true").stderr == ""


def test_warning_names_the_env_file_line(secretd, tmp_path: Path) -> None:
    env_file = tmp_path / "ci.env"
    env_file.write_text("# settings\nMODE=prod\nAPI_KEY=abc123\n")
    result = secretd("run", "--env-file", str(env_file), "--", "true")
    assert result.returncode == 0
    assert result.stderr == (
        f"secretd: warning: API_KEY (--env-file {env_file}:3) looks like a secret (name contains "
        "KEY); environment values are read by the command and every process it starts "
        "(/proc/<pid>/environ). Use --secret api_key.\n"
    )


def test_strict_refusal_names_the_origin(secretd, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CI", "true")
    (tmp_path / "ci.env").write_text("API_KEY=abc123\n")
    result = secretd("run", "--env-file", "ci.env", "-e", "DB_PASSWORD=pw", "--", "true")
    assert result.returncode == 2
    assert result.stderr == (
        "secretd: API_KEY (--env-file ci.env:1) (name contains KEY), -e DB_PASSWORD (name "
        "contains PASSWORD): environment values are read by the command and every process it "
        "starts (/proc/<pid>/environ): pass them with --secret, or accept one with "
        "--allow-env NAME\n"
    )
    assert "abc123" not in result.stderr


@pytest.mark.parametrize(
    ("name", "value", "secret"),
    [
        ("PUBLIC_KEY_URL", "https://host/x", False),
        ("PUBLIC_KEY_URL", "https://u:pw-12345@host/x", True),
        ("JWKS_URI", "https://auth.example.com/.well-known/jwks.json", False),
        ("TOKEN_ENDPOINT", "https://auth.example.com/oauth/token", False),
        ("AUTH_SERVER", "auth.example.com", False),
        ("DATABASE_URL", "postgres://app:s3cret@db:5432/app", True),
        ("SECRET_MANAGER_URL", "https://vault.example.com:8200", False),
        ("WEBHOOK_URL", "https://example.com/hook?token=abcdef123456", True),
    ],
)
def test_url_like_names_are_judged_by_their_value(name: str, value: str, secret: bool) -> None:
    assert bool(exposure.check_env([(name, value)])) is secret
