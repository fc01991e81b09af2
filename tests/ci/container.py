"""Running a script in the CI job's container (tests/ci/conftest.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.dockerd import Dockerd

ROOT = Path(__file__).resolve().parents[2]
SECRETD = f"{ROOT}/.venv/bin/secretd"


def in_job(
    dockerd: Dockerd, job: str, script: str, env: dict[str, str] | None = None, user: str = "0"
) -> subprocess.CompletedProcess[str]:
    """``sh -c script`` in the job's container as ``user``, with ``env`` added."""
    if user != "0":  # a user's own state, as a runner's job user has
        env = {"SECRETD_STATE_DIR": f"/tmp/state-{user}", "SECRETD_RUNTIME_DIR": f"/tmp/run-{user}",
               "HOME": "/tmp", **(env or {})}  # fmt: skip
    variables = [arg for k, v in (env or {}).items() for arg in ("-e", f"{k}={v}")]
    return subprocess.run(
        ["docker", "exec", "-u", user, *variables, job, "sh", "-c", script],
        env=dockerd.env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
