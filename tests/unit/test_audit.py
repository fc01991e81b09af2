"""``secretd audit --compose/--dockerfile`` through the real CLI: each exposed secret found
where it is, graded, with a fix, never its value, in text, JSON and SARIF 2.1.0 (checked
against the official schema); ``--fail-on`` decides the exit status.

The SARIF schema is vendored (tests/unit/sarif-schema-2.1.0.json, no network in tests):
OASIS SARIF TC's sarif-2.1/schema/sarif-schema-2.1.0.json from github.com/oasis-tcs/sarif-spec
(commit e0583813964ec43cea53b6b531b402866095ed1f), published under the OASIS IPR Policy.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from secretd import exposure
from tests.conftest import Runner

SCHEMA = json.loads(Path(__file__).with_name("sarif-schema-2.1.0.json").read_text())
CORPUS = Path(__file__).with_name("exposure_corpus.toml")

# Synthetic values, none live; each must never appear in any output.
GITHUB = "ghp_" + "Zq8rT2mV4xL6nB0cD1eF3gH5jK7pQ9sU2wY4"
NPM = "npm_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
PASSWORD = "hunter2-Kx9q"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCY7Q2e9Xz"
BEARER = "abcdefgh12345678QRST"
URL_PASSWORD = "pw8Tq1z"
VALUES = (GITHUB, NPM, PASSWORD, AWS_SECRET, BEARER, URL_PASSWORD)

DOCKERFILE = f"""\
# syntax=docker/dockerfile:1
FROM busybox
ARG DB_PASSWORD={PASSWORD}
ARG VERSION=1.2
ARG NO_DEFAULT_TOKEN
ENV API_TOKEN={GITHUB} \\
    MODE=prod
ENV LEGACY_SECRET {PASSWORD}
ENV GPG_KEY=B42F6819007F00F88E364FD4036A9C25BF357DD4 PUBLIC_KEY_URL=https://example.com/k
RUN curl -H "Authorization: Bearer {BEARER}" https://u:{URL_PASSWORD}@example.com/x \\
    && echo done
"""

COMPOSE = f"""\
x-common: &common
  environment:
    SHARED_TOKEN: {PASSWORD}
services:
  web:
    image: busybox
    environment:
      DB_PASSWORD: {PASSWORD}
      MODE: prod
      EMPTY_TOKEN:
      TOKEN_FILE: /run/secrets/token
  worker:
    <<: *common
    build:
      context: .
      args:
        - NPM_TOKEN={NPM}
        - PLAIN=1
    environment:
      - AWS_SECRET_ACCESS_KEY={AWS_SECRET}
      - FROM_SHELL_PASSWORD
  cron:
    <<: *common
    image: busybox
"""


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "Dockerfile").write_text(DOCKERFILE)
    (tmp_path / "compose.yml").write_text(COMPOSE)
    return tmp_path / "Dockerfile", tmp_path / "compose.yml"


def audit_json(secretd: Runner, *args: str) -> list[dict[str, Any]]:
    result = secretd("audit", *args, "--format", "json", "--fail-on", "none")
    assert result.returncode == 0, result.stderr
    findings: list[dict[str, Any]] = json.loads(result.stdout)["findings"]
    return findings


def places(findings: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
    return {(f["kind"], f["line"], f["detail"], f["name"], f["level"]) for f in findings}


def test_a_dockerfile_s_env_arg_and_run_lines_are_found_with_their_line(
    secretd: Runner, files: tuple[Path, Path]
) -> None:
    dockerfile, _ = files
    found = audit_json(secretd, "--dockerfile", str(dockerfile))
    assert places(found) == {
        ("dockerfile", 3, "ARG", "DB_PASSWORD", "medium"),
        ("dockerfile", 6, "ENV", "API_TOKEN", "high"),  # continued onto line 7
        ("dockerfile", 8, "ENV", "LEGACY_SECRET", "medium"),  # legacy ENV K V
        ("dockerfile", 10, "RUN", "argument", "high"),  # the Authorization header
        ("dockerfile", 10, "RUN", "argument", "medium"),  # the URL with a password
    }
    arg = next(f for f in found if f["name"] == "DB_PASSWORD")
    assert arg["reason"] == "name contains PASSWORD"
    assert "docker build --secret id=db_password" in arg["fix"]
    assert "RUN --mount=type=secret,id=db_password" in arg["fix"]
    env = next(f for f in found if f["name"] == "API_TOKEN")
    assert env["reason"] == "value matches the GitHub token pattern"
    assert env["fix"].startswith("secretd run --secret api_token ")
    run = next(f for f in found if f["detail"] == "RUN")
    assert run["fix"].startswith("take it out of the command: secretd run --secret NAME IMAGE")


def test_compose_environment_and_build_args_in_both_forms_with_yaml_merge_keys(
    secretd: Runner, files: tuple[Path, Path]
) -> None:
    _, compose = files
    found = audit_json(secretd, "--compose", str(compose))
    assert places(found) == {
        ("compose", 8, "service web environment", "DB_PASSWORD", "medium"),
        ("compose", 3, "service cron environment", "SHARED_TOKEN", "medium"),  # via <<
        ("compose", 17, "service worker build.args", "NPM_TOKEN", "high"),
        ("compose", 20, "service worker environment", "AWS_SECRET_ACCESS_KEY", "medium"),
    }
    db = next(f for f in found if f["name"] == "DB_PASSWORD")
    assert db["where"] == f"compose {compose}:8 service web environment"
    assert "services: web: secrets: [{source: db_password, target: db_password}]" in db["fix"]
    assert "secrets: db_password: {environment: DB_PASSWORD}" in db["fix"]


def test_no_value_in_any_format_on_stdout_or_stderr(
    secretd: Runner, files: tuple[Path, Path]
) -> None:
    dockerfile, compose = files
    for fmt in ("text", "json", "sarif"):
        result = secretd("audit", "--dockerfile", str(dockerfile), "--compose", str(compose),
                         "--format", fmt)  # fmt: skip
        assert result.returncode == 1
        for value in VALUES:
            assert value not in result.stdout + result.stderr, (fmt, value)


def test_text_report_has_a_line_per_finding_and_a_summary(
    secretd: Runner, files: tuple[Path, Path]
) -> None:
    _, compose = files
    result = secretd("audit", "--compose", str(compose))
    lines = result.stdout.splitlines()
    assert lines[-1] == "4 exposed secret(s) found: 1 high, 3 medium, 0 low"
    assert len(lines) == 5
    assert lines[0].startswith(f"MEDIUM compose {compose}:8 service web environment: DB_PASSWORD ")
    assert "(name contains PASSWORD)" in lines[0] and "fix: drop DB_PASSWORD" in lines[0]


def test_sarif_validates_against_the_2_1_0_schema(
    secretd: Runner, files: tuple[Path, Path]
) -> None:
    dockerfile, compose = files
    result = secretd("audit", "--dockerfile", str(dockerfile), "--compose", str(compose),
                     "--format", "sarif", "--fail-on", "none")  # fmt: skip
    report = json.loads(result.stdout)
    jsonschema.validate(report, SCHEMA)
    results = report["runs"][0]["results"]
    assert len(results) == 9
    levels = {r["ruleId"]: r["level"] for r in results}
    assert levels == {
        "known-credential": "error", "secret-name": "warning", "secret-in-value": "warning",
    }  # fmt: skip
    npm = next(r for r in results if r["properties"]["variable"] == "NPM_TOKEN")
    location = npm["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == f"file://{compose}"
    assert location["region"] == {"startLine": 17}
    assert len(npm["partialFingerprints"]["secretd/v1"]) == 12


def test_an_empty_report_validates_too(secretd: Runner, tmp_path: Path) -> None:
    clean = tmp_path / "Dockerfile"
    clean.write_text("FROM busybox\nENV MODE=prod\nARG VERSION=1\nRUN echo hi\n")
    result = secretd("audit", "--dockerfile", str(clean), "--format", "sarif")
    assert result.returncode == 0
    report = json.loads(result.stdout)
    jsonschema.validate(report, SCHEMA)
    assert report["runs"][0]["results"] == []
    text = secretd("audit", "--dockerfile", str(clean))
    assert (text.returncode, text.stdout) == (0, "no exposed secrets found\n")


@pytest.mark.parametrize(("fail_on", "code"), [("none", 0), ("low", 1), ("medium", 1), ("high", 1)])
def test_fail_on_sets_the_exit_status(
    secretd: Runner, tmp_path: Path, fail_on: str, code: int
) -> None:
    compose = tmp_path / "compose.yml"
    compose.write_text(f"services:\n  a:\n    environment:\n      NPM_TOKEN: {NPM}\n")
    assert secretd("audit", "--compose", str(compose), "--fail-on", fail_on).returncode == code


def test_a_medium_finding_fails_the_default_but_not_fail_on_high(
    secretd: Runner, tmp_path: Path
) -> None:
    compose = tmp_path / "compose.yml"
    compose.write_text(f"services:\n  a:\n    environment:\n      DB_PASSWORD: {PASSWORD}\n")
    assert secretd("audit", "--compose", str(compose)).returncode == 1
    assert secretd("audit", "--compose", str(compose), "--fail-on", "high").returncode == 0


def test_fingerprints_are_stable_keyed_and_change_with_the_value(
    secretd: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    compose = tmp_path / "compose.yml"

    def fingerprint(value: str) -> str:
        compose.write_text(f"services:\n  a:\n    environment:\n      DB_PASSWORD: {value}\n")
        return str(audit_json(secretd, "--compose", str(compose))[0]["fingerprint"])

    first = fingerprint(PASSWORD)
    assert fingerprint(PASSWORD) == first  # the machine's key, kept in the state directory
    assert fingerprint(PASSWORD + "x") != first
    key = tmp_path / "state" / "audit.key"
    assert key.stat().st_mode & 0o777 == 0o600
    monkeypatch.setenv("SECRETD_AUDIT_KEY", "ci-key")
    assert fingerprint(PASSWORD) != first


def test_usage_errors_exit_2_with_one_line(secretd: Runner, tmp_path: Path) -> None:
    result = secretd("audit")
    assert (result.returncode, result.stderr) == (
        2, "secretd: nothing to audit: name --docker, --compose FILE or --dockerfile FILE\n",
    )  # fmt: skip
    bad = tmp_path / "compose.yml"
    bad.write_text(f"services:\n  a: [\n  DB_PASSWORD: {PASSWORD}\n")
    result = secretd("audit", "--compose", str(bad))
    assert result.returncode == 2
    assert result.stderr.startswith(f"secretd: --compose {bad} is not valid YAML at line ")
    assert PASSWORD not in result.stderr
    missing = secretd("audit", "--dockerfile", str(tmp_path / "nope"))
    assert missing.returncode == 2
    assert "cannot read --dockerfile" in missing.stderr
    assert secretd("audit", "--compose", "x", "--fail-on", "bogus").returncode == 2


def test_the_corpus_judged_in_a_compose_file_matches_the_run_warnings(
    secretd: Runner, tmp_path: Path
) -> None:
    """One detection: every corpus case a run would warn about is a finding, no other."""
    cases = tomllib.loads(CORPUS.read_text())["case"]
    services = {
        f"s{i}": {"image": "busybox", "environment": {case["name"]: case["value"]}}
        for i, case in enumerate(cases)
    }
    compose = tmp_path / "compose.json.yml"
    compose.write_text(json.dumps({"services": services}))  # JSON is YAML
    found = audit_json(secretd, "--compose", str(compose))
    flagged = {detail for f in found if (detail := f["detail"].split()[1])}
    expected = {
        f"s{i}" for i, case in enumerate(cases)
        if exposure.check_env([(case["name"], case["value"])])
    }  # fmt: skip
    assert flagged == expected
    assert len(found) == len(expected)
    output = json.dumps(found)
    names = " ".join(case["name"].lower() for case in cases)
    for i, case in enumerate(cases):  # secrets long enough to tell, and not a word of a name
        if f"s{i}" in expected and len(case["value"]) >= 8 and case["value"].lower() not in names:
            assert case["value"] not in output, case["name"]


def test_an_empty_or_foreign_key_file_is_not_used_as_the_key(
    secretd: Runner, tmp_path: Path
) -> None:
    """A key file cut short (an audit killed while making it, or another tool's file) would
    make an HMAC under a known key: a key for the run is used instead."""
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "audit.key").write_bytes(b"")
    compose = tmp_path / "compose.yml"
    compose.write_text(f"services:\n  a:\n    environment:\n      DB_PASSWORD: {PASSWORD}\n")
    first, second = (
        audit_json(secretd, "--compose", str(compose))[0]["fingerprint"] for _ in range(2)
    )
    assert first != second


@pytest.mark.parametrize(
    ("created_by", "pairs"),
    [
        # the classic builder
        (f"|2 DB_PASSWORD={PASSWORD} V=1 /bin/sh -c true", {("DB_PASSWORD", PASSWORD, "arg")}),
        (f"/bin/sh -c #(nop)  ENV API_TOKEN={GITHUB}", {("API_TOKEN", GITHUB, "env")}),
        ("/bin/sh -c #(nop)  ARG DB_PASSWORD", set()),
        # BuildKit
        (
            f"RUN |1 DB_PASSWORD={PASSWORD} /bin/sh -c true # buildkit",
            {("DB_PASSWORD", PASSWORD, "arg")},
        ),
        (f"ENV API_TOKEN={GITHUB}", {("API_TOKEN", GITHUB, "env")}),
        (f"ARG DB_PASSWORD={PASSWORD}", {("DB_PASSWORD", PASSWORD, "arg")}),
        (
            f"RUN /bin/sh -c app --db-password={PASSWORD} # buildkit",
            {("db-password", PASSWORD, "command")},
        ),
    ],
)
def test_history_steps_of_both_builders(created_by: str, pairs: set[tuple[str, str, str]]) -> None:
    from secretd.audit import history_pairs

    found = {(p.name, p.value, p.how) for p in history_pairs(created_by, "history step 1/1")}
    assert pairs <= found
    assert all(exposure.check_env([(name, value)]) == [] for name, value, _ in found - pairs)


def test_a_dockerfile_s_escape_directive_is_honoured(secretd: Runner, tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(
        f"# escape=`\nFROM busybox\nENV MODE=C:\\ `\n    DB_PASSWORD={PASSWORD}\nRUN true\n"
    )
    found = audit_json(secretd, "--dockerfile", str(dockerfile))
    assert places(found) == {("dockerfile", 3, "ENV", "DB_PASSWORD", "medium")}
