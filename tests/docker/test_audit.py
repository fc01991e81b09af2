"""``secretd audit --docker`` against a real dockerd: a container created with a secret in
its environment, command and labels, and an image whose history carries a secret build
argument and ENV, are each found; a clean engine (busybox only, no container) gives none;
no value reaches any output; ``--fail-on`` sets the exit status."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Runner
from tests.docker.conftest import IMAGE, Dockerd
from tests.support.daemons import import_busybox, start_dockerd, stop

pytestmark = [pytest.mark.docker, pytest.mark.root]

# Synthetic values, none live.
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCY9Tq3Lm"
DB_PASSWORD = "Hx7-build-arg-pw-2Qz"
SLACK = "xoxb-" + "918273645012-QwErTyUiOpAsDfGh"
GITHUB = "ghp_" + "Rm4Tq8Zx2Vb6Nc0Lk3Jh5Gf7Dd9Ss1Aa2Pp4"
CMD_PASSWORD = "cmd-pw-8ZkQ3t"
VALUES = (AWS_SECRET, DB_PASSWORD, SLACK, GITHUB, CMD_PASSWORD)
TAG = "secretd-audit-leaky:1"
CONTAINER = "secretd-audit-leaky"


@pytest.fixture(scope="module")
def leaky(dockerd: Dockerd) -> Iterator[None]:
    """An image built with a secret ARG used by a RUN and a secret ENV, and a created (not
    started) container with secrets in -e, its command and a label."""
    with tempfile.TemporaryDirectory() as context:
        Path(context, "Dockerfile").write_text(
            f"FROM {IMAGE}\nARG DB_PASSWORD\nENV SLACK_TOKEN={SLACK}\nRUN true\n"
        )
        dockerd("build", "--network", "none", "-q", "-t", TAG,
                "--build-arg", f"DB_PASSWORD={DB_PASSWORD}", context)  # fmt: skip
    dockerd("create", "--name", CONTAINER, "-e", f"AWS_SECRET_ACCESS_KEY={AWS_SECRET}",
            "--label", f"deploy.github-token={GITHUB}",
            IMAGE, "app", f"--db-password={CMD_PASSWORD}")  # fmt: skip
    try:
        yield
    finally:
        dockerd("rm", "-f", CONTAINER, check=False)
        dockerd("rmi", "-f", TAG, check=False)


def findings(secretd: Runner, *args: str) -> list[dict[str, Any]]:
    result = secretd("audit", "--docker", "--format", "json", "--fail-on", "none", *args)
    assert result.returncode == 0, result.stderr
    found: list[dict[str, Any]] = json.loads(result.stdout)["findings"]
    return found


def test_each_exposure_of_the_container_and_the_image_is_found(
    secretd: Runner, leaky: None
) -> None:
    found = findings(secretd)
    container = {
        (f["detail"], f["name"], f["level"], f["reason"])
        for f in found
        if f["kind"] == "container" and f["subject"].startswith(f"{CONTAINER} (")
    }
    assert container == {
        ("env", "AWS_SECRET_ACCESS_KEY", "medium", "name contains SECRET"),
        ("Cmd", "db-password", "medium", "name contains PASSWORD"),
        ("label", "deploy.github-token", "high", "value matches the GitHub token pattern"),
    }
    image = {
        (f["detail"], f["name"], f["level"])
        for f in found
        if f["kind"] == "image" and f["subject"] == TAG
    }
    steps = {detail for detail, _, _ in image if detail.startswith("history step")}
    assert ("env", "SLACK_TOKEN", "high") in image  # Config.Env
    assert {(name, level) for detail, name, level in image if detail in steps} == {
        ("SLACK_TOKEN", "high"),  # the ENV step
        ("DB_PASSWORD", "medium"),  # the build argument the RUN step saw: |1 DB_PASSWORD=...
    }
    arg = next(f for f in found if f["name"] == "DB_PASSWORD")
    assert "docker build --secret id=db_password" in arg["fix"]
    env = next(f for f in found if f["name"] == "AWS_SECRET_ACCESS_KEY")
    assert env["fix"].startswith("secretd run --secret aws_secret_access_key ")


def test_no_value_in_any_output_and_fail_on_sets_the_status(secretd: Runner, leaky: None) -> None:
    for fmt in ("text", "json", "sarif"):
        result = secretd("audit", "--docker", "--format", fmt)
        assert result.returncode == 1, result.stderr  # the default --fail-on medium
        assert result.stdout.strip()
        for value in VALUES:
            assert value not in result.stdout + result.stderr, (fmt, value)
    assert secretd("audit", "--docker", "--fail-on", "high").returncode == 1
    assert secretd("audit", "--docker", "--fail-on", "none").returncode == 0


def test_a_clean_engine_has_no_finding(secretd: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    """busybox only and no container, on an engine of this test's own."""
    root = Path(tempfile.mkdtemp(prefix="secretd-audit-dockerd-"))
    try:
        proc, host = start_dockerd(root)
        try:
            monkeypatch.setenv("DOCKER_HOST", host)
            import_busybox("docker", {**os.environ, "DOCKER_HOST": host})
            result = secretd("audit", "--docker", "--fail-on", "low")
            assert (result.returncode, result.stdout, result.stderr) == (
                0, "no exposed secrets found\n", "",
            )  # fmt: skip
        finally:
            stop(proc)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_an_unreachable_engine_is_one_line_exit_125(
    secretd: Runner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/none.sock")
    result = secretd("audit", "--docker")
    assert result.returncode == 125
    assert result.stderr.startswith(f"secretd: cannot reach Docker at unix://{tmp_path}/none.sock")
    assert len(result.stderr.splitlines()) == 1
