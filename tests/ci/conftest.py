"""A CI job's container for the tests that need one: the real dockerd (shared fixture)
and a long-lived busybox container with Docker's default capabilities and seccomp
profile, the checkout, its venv and the host's /usr bound read-only (TESTING.md, "A CI
job's container")."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.ci.container import ROOT
from tests.support.dockerd import IMAGE, Dockerd, dockerd  # noqa: F401 - fixture


@pytest.fixture(scope="session")
def job(dockerd: Dockerd) -> Iterator[str]:  # noqa: F811 - the imported fixture
    name = f"secretd-ci-job-{os.getpid()}"
    binds = ["/usr:/usr:ro", "/lib:/lib:ro", "/lib64:/lib64:ro", f"{ROOT}:{ROOT}:ro"]
    dockerd(
        "run", "-d", "--name", name, "--network", "none",
        *[arg for bind in binds for arg in ("-v", bind)],
        "-e", "SECRETD_STATE_DIR=/tmp/state", "-e", "SECRETD_RUNTIME_DIR=/tmp/run",
        "-e", "HOME=/root", IMAGE, "sleep", "3600",
    )  # fmt: skip
    try:
        yield name
    finally:
        dockerd("rm", "-f", name, check=False)
