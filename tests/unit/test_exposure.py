"""exposure.py against a labelled corpus of -e variables, with and without detect-secrets.

The corpus (exposure_corpus.toml) holds synthetic values in the shapes real tools use; the
test prints precision and recall (`pytest -s`, and as junit properties) and holds a floor.
"""

from __future__ import annotations

import time
import tomllib
from pathlib import Path
from typing import Any

import pytest

from secretd import exposure

CORPUS = Path(__file__).with_name("exposure_corpus.toml")
FLOOR = 0.95


def load_corpus() -> list[dict[str, Any]]:
    with CORPUS.open("rb") as fh:
        return list(tomllib.load(fh)["case"])


@pytest.fixture(params=["core rules", "with detect-secrets"])
def rules(request, monkeypatch) -> str:
    if request.param == "core rules":
        monkeypatch.setattr(exposure, "_plugins", lambda: None)
    else:
        pytest.importorskip("detect_secrets")
    return str(request.param)


def test_corpus_is_large_balanced_and_labelled() -> None:
    cases = load_corpus()
    exposed = sum(case["exposed"] for case in cases)
    assert len(cases) >= 200
    assert 0.4 <= exposed / len(cases) <= 0.6
    for case in cases:
        assert set(case) == {"name", "value", "exposed", "why"}, case["name"]
        assert case["why"], case["name"]


def test_precision_and_recall_over_the_corpus(rules: str, record_property) -> None:
    cases = load_corpus()
    hits = {id(case) for case in cases if exposure.check_env([(case["name"], case["value"])])}
    true_positives = sum(1 for case in cases if case["exposed"] and id(case) in hits)
    precision = true_positives / len(hits)
    recall = true_positives / sum(case["exposed"] for case in cases)
    missed = [c["name"] for c in cases if c["exposed"] and id(c) not in hits]
    false_alarms = [c["name"] for c in cases if not c["exposed"] and id(c) in hits]
    record_property("precision", f"{precision:.3f}")
    record_property("recall", f"{recall:.3f}")
    print(
        f"\nexposure ({rules}), {len(cases)} cases: precision {precision:.3f}, recall "
        f"{recall:.3f}; missed {missed}; false alarms {false_alarms}"
    )
    assert precision >= FLOOR, false_alarms
    assert recall >= FLOOR, missed


# Every case issue 11 names, with the exact reason (or None: no warning).
ISSUE_CASES = [
    ("DB_PASS", "hunter2", "name contains PASS"),
    ("PASSPHRASE", "correct horse battery staple", "name contains PASSPHRASE"),
    ("REDIS_URL", "redis://:pw@host:6379/0", "value is a URL with a password"),
    ("DATABASE_URL", "postgres://u:p@h/db", "value is a URL with a password"),
    (
        "DB_CONNECTION",
        "Server=tcp:db,1433;Database=app;User Id=sa;Password=Str0ng!;",
        "value has a field whose name contains PASSWORD",
    ),
    (
        "AZURE_STORAGE_CONNECTION_STRING",
        "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey=bm90LWEta2V5LWp1c3QtYS1zaGFwZQ==;"
        "EndpointSuffix=core.windows.net",
        "value has a field whose name contains KEY",
    ),
    ("UPSTREAM", "Basic dXNlcjpwYXNzd29yZA==", "value is an Authorization header value"),
    ("UPSTREAM", "Bearer 0aB1cD2eF3gH4iJ5kL6m", "value is an Authorization header value"),
    ("GIT_COMMIT", "9fceb02d0ae598e95dc970b74767f19372d61af8", None),
    ("SSH_AUTH_SOCK", "/tmp/ssh-XXXXkq3Ld9/agent.2211", None),
    ("TOKEN_TTL", "3600", None),
    ("PUBLIC_KEY_URL", "https://host/x", None),
    ("PRIMARY_KEY", "id", None),
]


@pytest.mark.parametrize(("name", "value", "reason"), ISSUE_CASES)
def test_the_cases_the_issue_names(rules: str, name: str, value: str, reason: str | None) -> None:
    found = exposure.check_env([(name, value)])
    assert [e.reason for e in found] == ([reason] if reason else [])


def test_a_url_name_is_judged_by_whether_the_url_carries_credentials() -> None:
    assert exposure.check_env([("PUBLIC_KEY_URL", "https://host/x")]) == []
    found = exposure.check_env([("PUBLIC_KEY_URL", "https://u:pw@host/x")])
    assert [e.reason for e in found] == ["value is a URL with a password"]


@pytest.mark.parametrize("url", ["https://u:pw@[bad/x", "redis://:pw@host:99999999/0"])
def test_a_malformed_url_still_shows_its_password(rules: str, url: str) -> None:
    found = exposure.check_env([("BROKER", url)])
    assert [e.reason for e in found] == ["value is a URL with a password"]


def test_a_name_that_only_names_a_secret_still_has_its_value_checked() -> None:
    pem = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk=\n-----END OPENSSH PRIVATE KEY-----"
    for name in ("GPG_KEY", "DB_PASSWORD_FILE", "JWT_PUBLIC_KEY"):
        found = exposure.check_env([(name, pem)])
        assert [e.reason for e in found] == ["value matches the PEM private key pattern"]


def test_allowed_names_are_skipped() -> None:
    assert exposure.check_env([("API_KEY", "abc")], allow=["API_KEY"]) == []


def test_warnings_name_the_variable_never_its_value(rules: str) -> None:
    for case in load_corpus():
        for found in exposure.check_env([(case["name"], case["value"])]):
            assert found.warning().startswith(f"-e {case['name']} looks like a secret (")
            for part in case["value"].split():
                assert len(part) < 6 or part not in found.reason, case["name"]


@pytest.mark.parametrize(
    "value",
    ["x" * 500_000, "eyJ" * 170_000, "https://" * 62_000, "a " * 250_000 + "=", "k=v;" * 125_000],
    ids=["letters", "jwt-prefixes", "schemes", "spaces-then-equals", "fields"],
)
def test_a_value_at_the_size_limit_is_judged_in_linear_time(rules: str, value: str) -> None:
    # A scheme regex without a bound took 200 s on 500 KB of letters; allow a slow machine.
    start = time.monotonic()
    exposure.check_env([("SETTING", value)])
    assert time.monotonic() - start < 20
