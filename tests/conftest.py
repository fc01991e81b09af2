"""Fixtures every test shares: a scrubbed environment and a way to run the real CLI.

Component fixtures (OpenBao, moto, dockerd, podman, ...) live in the conftest.py of the
test folder that needs them, and start the real thing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from secretd import ci

SCRUBBED_PREFIXES = ("VAULT_", "AWS_", "SECRETD_", "DOCKER_", "CONTAINERS_", "BAO_")
# A CI system's markers change what secretd prints (secretd/ci.py): tests set them.
SCRUBBED_NAMES = frozenset({"CI", "GITHUB_ACTIONS", "GITLAB_CI", *ci.OTHERS})


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, Path]]:
    """Drop the developer's credentials and point secretd's state at a temporary place."""
    for key in list(os.environ):
        if key.startswith(SCRUBBED_PREFIXES) or key in SCRUBBED_NAMES:
            monkeypatch.delenv(key)
    home = tmp_path / "home"
    paths = {
        "state": tmp_path / "state",
        "runtime": tmp_path / "runtime",
        "config": home / ".config",
        "home": home,
    }
    home.mkdir()
    monkeypatch.setenv("SECRETD_STATE_DIR", str(paths["state"]))
    monkeypatch.setenv("SECRETD_RUNTIME_DIR", str(paths["runtime"]))
    # Tests read values through stdout, which is a pipe here: where `run` would redact by
    # default. tests/redact/ (and any test about redaction) unsets this to get the default.
    monkeypatch.setenv("SECRETD_REDACT", "false")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(paths["config"]))
    monkeypatch.chdir(tmp_path)
    yield paths


Runner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def secretd() -> Runner:
    """Run the real ``secretd`` command in a subprocess, as a user would.

    Keyword arguments go to ``subprocess.run``; ``input`` may be str or bytes.
    """

    def run(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("timeout", 60)
        if not isinstance(kwargs.get("input"), bytes):
            kwargs.setdefault("text", True)
        return subprocess.run([sys.executable, "-m", "secretd", *args], **kwargs)  # type: ignore[call-overload,no-any-return]

    return run


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``root`` need root; they are reported as skipped, loudly, otherwise."""
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (run 'make test' as root)")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)
