"""CI detection, and GitHub's ``::add-mask::`` lines before the command's first byte."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from secretd import ci
from secretd.errors import UsageError

PEM = "-----BEGIN PRIVATE KEY-----\nMIIBVAIBADANBgkqhkiG9w0BAQEFAASC\nAT4wggE6AgEAAkEAq7BFUpkGp3\n-----END PRIVATE KEY-----\n"  # noqa: E501


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"GITHUB_ACTIONS": "true", "CI": "true"}, "github"),
        ({"GITLAB_CI": "true", "CI": "true"}, "gitlab"),
        ({"CI": "true"}, "generic"),
        ({"CI": "1"}, "generic"),
        ({"JENKINS_URL": "http://jenkins/"}, "generic"),
        ({"BUILDKITE": "true"}, "generic"),
        ({"CI": "false"}, None),
        ({"SECRETD_CI": "none", "CI": "true", "GITHUB_ACTIONS": "true"}, None),
        ({"SECRETD_CI": "GitLab"}, "gitlab"),
        ({"SECRETD_CI": "generic"}, "generic"),
        ({"GITHUB_ACTIONS": "false"}, None),
        ({}, None),
    ],
)
def test_detect(env: dict[str, str], name: str | None) -> None:
    found = ci.detect(env)
    assert (found.name if found else None) == name


def test_an_unknown_secretd_ci_is_a_usage_error(secretd, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UsageError, match="SECRETD_CI='jenkins' is not a CI system"):
        ci.detect({"SECRETD_CI": "jenkins"})
    monkeypatch.setenv("SECRETD_CI", "jenkins")
    result = secretd("run", "--", "true")
    assert (result.returncode, result.stderr) == (
        2,
        "secretd: SECRETD_CI='jenkins' is not a CI system secretd knows: use one of github, "
        "gitlab, generic, none\n",
    )


def test_secretd_ci_none_turns_ci_off(secretd, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test suite run inside a job: not strict, no masks."""
    monkeypatch.setenv("CI", "true")
    assert secretd("run", "-e", "API_KEY=abc", "--", "true").returncode == 2
    monkeypatch.setenv("SECRETD_CI", "none")
    assert secretd("run", "-e", "API_KEY=abc", "--", "true").returncode == 0


def test_escape_follows_the_runners_rules() -> None:
    assert ci.escape("a%b\rc\nd") == "a%25b%0Dc%0Ad"


def test_mask_strings_lines_and_json_leaves() -> None:
    assert ci.mask_strings(b"plain-value\n") == ["plain-value"]
    assert ci.mask_strings(PEM.encode()) == PEM.rstrip("\n").split("\n")
    document = {"user": "app", "password": "pw-1\npw-2", "port": 5432, "nested": ["deep-x"]}
    strings = ci.mask_strings(json.dumps(document).encode())
    assert json.dumps(document) in strings
    assert {"app", "pw-1", "pw-2", "deep-x"} <= set(strings)
    assert "5432" not in strings  # a number is no string leaf
    assert ci.mask_strings(b"\xff\xfe binary") == []
    assert ci.mask_strings(b"a\n\n  \nb") == ["a", "b"]


def test_mask_commands_one_line_each_never_a_raw_newline() -> None:
    data = ci.mask_commands([b"50%\roff", b"x\ny", b"x"]).decode()
    assert data == "::add-mask::50%25%0Doff\n::add-mask::x\n::add-mask::y\n"


@pytest.fixture
def sources(tmp_path: Path) -> list[str]:
    (tmp_path / "key.pem").write_text(PEM)
    (tmp_path / "db.json").write_text('{"username": "app-user", "password": "s3cr3t-pw"}')
    (tmp_path / "token").write_text("tok-50%-done")
    return [
        f"key=file:{tmp_path / 'key.pem'}",
        f"db=file:{tmp_path / 'db.json'}",
        f"token=file:{tmp_path / 'token'}",
    ]


@pytest.mark.parametrize("sandbox", [[], ["--no-sandbox"]])
def test_github_masks_come_before_any_output(
    secretd, monkeypatch: pytest.MonkeyPatch, sources: list[str], sandbox: list[str]
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("CI", "true")
    refs = [arg for source in sources for arg in ("--secret", source)]
    result = secretd("run", *sandbox, *refs, "--", "echo", "first line of the command")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    masks = [line for line in lines if line.startswith("::add-mask::")]
    assert lines == [*masks, "first line of the command"]
    expected = [*PEM.rstrip("\n").split("\n")]
    expected += ['{"username": "app-user", "password": "s3cr3t-pw"}', "app-user", "s3cr3t-pw"]
    expected += ["tok-50%25-done"]
    assert sorted(masks) == sorted(f"::add-mask::{text}" for text in expected)
    for secret in ("s3cr3t-pw", "tok-50%-done", "MIIBVAIBADANBgkqhkiG9w0BAQEFAASC"):
        assert secret not in result.stderr


def test_no_masks_outside_github(secretd, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "v").write_text("value-1234")
    monkeypatch.setenv("CI", "true")
    result = secretd("run", "--secret", f"v=file:{tmp_path / 'v'}", "--", "true")
    assert result.returncode == 0
    assert "add-mask" not in result.stdout + result.stderr
