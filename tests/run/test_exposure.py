"""Warnings about -e values that the command's processes (and, for images, 'docker
inspect') would see."""

from __future__ import annotations

from pathlib import Path

import pytest

TOKENS = {
    "aws": "AKIAIOSFODNN7EXAMPLE",
    "github": "ghp_" + "a1B2c3D4e5F6g7H8i9J0" * 2,
    "jwt": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
    "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "stripe": "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc",
    "random": "q8Zr2LmX0vT4kW9pYs6NfB3uH7cJ1dGe",
}


@pytest.mark.parametrize(
    "name",
    [
        "DB_PASSWORD",
        "MYSQL_PASSWD",
        "APP_SECRET",
        "GH_TOKEN",
        "API_KEY",
        "AWS_CREDENTIALS",
        "PRIVATE_PEM",
        "AUTH_HEADER",
    ],
)
def test_secret_looking_names_warn(secretd, name: str) -> None:
    result = secretd("run", "-e", f"{name}=plain", "--", "true")
    assert result.returncode == 0
    word = next(
        w
        for w in ("PASSWORD", "PASSWD", "SECRET", "TOKEN", "KEY", "CREDENTIAL", "PRIVATE", "AUTH")
        if w in name
    )
    assert result.stderr == (
        f"secretd: warning: -e {name} looks like a secret (name contains {word}); environment "
        "values are read by the command and every process it starts (/proc/<pid>/environ). "
        f"Use --secret {name.lower()}.\n"
    )


@pytest.mark.parametrize("kind", sorted(TOKENS))
def test_secret_looking_values_warn_without_showing_them(secretd, kind: str) -> None:
    value = TOKENS[kind]
    result = secretd("run", "-e", f"SETTING={value}", "--", "true")
    assert result.stderr.startswith("secretd: warning: -e SETTING looks like a secret (value ")
    assert value not in result.stderr


@pytest.mark.parametrize(
    "pair",
    [
        "MODE=production",
        "PORT=8080",
        "GPG_KEY=0x1234ABCD",
        "PATH_PREFIX=/usr/local/bin",
        "DB_PASSWORD_FILE=/run/secrets/db",
        "VERSION=1.2.3",
        "URL=https://example.com/a",
    ],
)
def test_plain_values_do_not_warn(secretd, pair: str) -> None:
    result = secretd("run", "-e", pair, "--", "true")
    assert result.returncode == 0
    assert result.stderr == ""


def test_env_file_entries_are_checked(secretd, tmp_path: Path) -> None:
    env_file = tmp_path / "app.env"
    env_file.write_text(f"# comment\nMODE=production\nSTRIPE={TOKENS['stripe']}\n")
    result = secretd("run", "--env-file", str(env_file), "--", "sh", "-c", 'echo "$MODE"')
    assert result.stdout == "production\n"
    assert result.stderr.startswith(
        f"secretd: warning: STRIPE (--env-file {env_file}:3) looks like a secret"
    )


def test_strict_refuses_before_starting(secretd, tmp_path: Path) -> None:
    marker = tmp_path / "started"
    result = secretd("run", "--strict", "-e", "API_KEY=abc", "--", "touch", str(marker))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "-e API_KEY (name contains KEY)" in result.stderr
    assert "abc" not in result.stderr
    assert not marker.exists()


@pytest.mark.parametrize("env", [{"SECRETD_STRICT": "1"}, {"CI": "true"}])
def test_strict_from_environment(secretd, monkeypatch, env: dict[str, str]) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert secretd("run", "-e", "API_KEY=abc", "--", "true").returncode == 2


def test_allow_env_silences_one_variable(secretd) -> None:
    result = secretd("run", "--strict", "--allow-env", "API_KEY", "-e", "API_KEY=abc", "--", "true")
    assert result.returncode == 0
    assert result.stderr == ""


def test_bare_name_takes_the_callers_value(secretd, monkeypatch) -> None:
    monkeypatch.setenv("MODE", "staging")
    result = secretd("run", "-e", "MODE", "--", "sh", "-c", 'echo "$MODE"')
    assert result.stdout == "staging\n"
