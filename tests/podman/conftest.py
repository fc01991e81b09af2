"""Real podman for the podman tests, with its own containers.conf and its own storage
under a temporary directory (tests/support/daemons.py), so the tests can search all of
podman's storage and leave nothing behind."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.daemons import IMAGE, import_busybox, podman_env
from tests.support.engines import bound, unmount_leftovers  # noqa: F401 - fixtures

__all__ = ["IMAGE", "Podman"]


@dataclass
class Podman:
    root: Path
    variables: dict[str, str]

    @property
    def storage(self) -> list[Path]:
        """Everywhere podman keeps container state: graph root, run root, tmp dir."""
        return [self.root / "graph", self.root / "run", self.root / "tmp"]

    def env(self) -> dict[str, str]:
        return {**os.environ, **self.variables}

    def __call__(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(
            ["podman", *args], env=self.env(), capture_output=True, text=True, timeout=60
        )
        if check and done.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} failed: {done.stderr}")
        return done.stdout


@pytest.fixture(scope="session")
def podman() -> Iterator[Podman]:
    if shutil.which("podman") is None:
        pytest.fail("podman is not installed (make setup installs it)")
    if os.geteuid() != 0:
        pytest.skip("the podman tests run rootful podman")
    root = Path(tempfile.mkdtemp(prefix="secretd-podman-"))
    engine = Podman(root, podman_env(root))
    try:
        import_busybox("podman", engine.env())
        yield engine
    finally:
        engine("rm", "--all", "--force", "--time=0", check=False)
        engine("rmi", "--all", "--force", check=False)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(autouse=True)
def podman_environ(podman: Podman, monkeypatch: pytest.MonkeyPatch) -> Podman:
    """Point secretd (and the podman CLI) at the test configuration and storage."""
    for key, value in podman.variables.items():
        monkeypatch.setenv(key, value)
    return podman
