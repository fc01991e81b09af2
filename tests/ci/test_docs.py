"""docs/ci.md's GitHub Actions workflow and .gitlab-ci.yml job, run as written: their
``secretd`` commands are read from the page (so the page stays true), with the job's
variables, on the host and in a container without CAP_SYS_ADMIN."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ci.container import ROOT, in_job
from tests.support.dockerd import Dockerd

PAGE = ROOT / "docs" / "ci.md"
VALUES = {"DB_PASSWORD": "db-pass-from-ci-9d2c", "API_TOKEN": "api-token-from-ci-77aa"}
SECRET = re.compile(r"\$\{\{\s*secrets\.(\w+)\s*\}\}")


def blocks() -> list[dict[str, Any]]:
    text = PAGE.read_text()
    return [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", text, re.S)]


def github_step() -> tuple[dict[str, str], str]:
    """The workflow step that runs secretd: its variables (secrets filled in) and script."""
    workflow = next(b for b in blocks() if "jobs" in b)
    steps = [s for spec in workflow["jobs"].values() for s in spec["steps"]]
    step = next(s for s in steps if "secretd run" in s.get("run", ""))
    env = {k: SECRET.sub(lambda m: VALUES[m.group(1)], v) for k, v in step["env"].items()}
    return env, step["run"]


def gitlab_script() -> tuple[dict[str, str], str]:
    """The job's secretd lines (installing it is the test's business), and the masked
    variables the project defines."""
    pipeline = next(b for b in blocks() if "jobs" not in b)
    lines = [line for spec in pipeline.values() for line in spec["script"]]
    return {"DB_PASSWORD": VALUES["DB_PASSWORD"]}, "\n".join(
        line for line in lines if line.startswith("secretd ")
    )


GITHUB = {"CI": "true", "GITHUB_ACTIONS": "true"}
GITLAB = {"CI": "true", "GITLAB_CI": "true"}


def test_the_page_has_both_examples() -> None:
    github, gitlab = github_step(), gitlab_script()
    assert "secretd run" in github[1] and "secretd run" in gitlab[1]


def check_github(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == [f"::add-mask::{VALUES[name]}" for name in ("DB_PASSWORD", "API_TOKEN")]
    assert len(lines) == 3 and lines[2].startswith("deploying with /") and lines[2].endswith("/db")
    for value in VALUES.values():
        assert value not in result.stderr


def check_gitlab(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"deploying with /\S+/db\n", result.stdout)
    assert VALUES["DB_PASSWORD"] not in result.stderr


def on_host(
    env: dict[str, str], script: str, ci: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    path = f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}"
    return subprocess.run(
        ["sh", "-e", "-c", script], env={**os.environ, **ci, **env, "PATH": path},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_github_workflow_on_the_host() -> None:
    env, script = github_step()
    check_github(on_host(env, script, GITHUB))


def test_gitlab_job_on_the_host() -> None:
    env, script = gitlab_script()
    check_gitlab(on_host(env, script, GITLAB))


def in_container(
    dockerd: Dockerd, job: str, env: dict[str, str], script: str, ci: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    path = {"PATH": f"{ROOT}/.venv/bin:/usr/bin:/bin"}
    result = in_job(dockerd, job, f"set -e\n{script}", {**ci, **env, **path})
    notices = [line for line in result.stderr.splitlines() if "without a sandbox" in line]
    assert len(notices) == 1, result.stderr
    return result


@pytest.mark.docker
def test_github_workflow_in_a_container_job(dockerd: Dockerd, job: str) -> None:
    env, script = github_step()
    check_github(in_container(dockerd, job, env, script, GITHUB))


@pytest.mark.docker
def test_gitlab_job_in_a_docker_executor(dockerd: Dockerd, job: str) -> None:
    env, script = gitlab_script()
    check_gitlab(in_container(dockerd, job, env, script, GITLAB))


def test_examples_in_the_page_match_what_secretd_prints() -> None:
    """The sandbox's refusal, quoted on the page, starts as secretd says it."""
    quoted = "secretd: cannot set up the sandbox: unshare: Operation not permitted (namespaces "
    assert quoted in Path(PAGE).read_text()
