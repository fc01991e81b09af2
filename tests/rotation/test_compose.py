"""``secretd secret rotate NAME`` reaches the running containers of a compose project
(compose runs in-process and returns: the CLI, or the daemon when one does the rotation,
writes the new value into each service tmpfs that holds the name)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.compose.conftest import IMAGE, Project, project  # noqa: F401 - fixtures
from tests.compose.test_compose import container
from tests.daemon.conftest import Daemon, World
from tests.support.dockerd import docker_env, dockerd  # noqa: F401 - fixtures
from tests.support.engines import unmount_leftovers  # noqa: F401 - fixtures
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.docker, pytest.mark.root]

COMPOSE = f"""\
services:
  web:
    image: {IMAGE}
    command: ["sleep", "600"]
    network_mode: none
    secrets:
      - tok
      - db_pass
      - source: tok
        target: /etc/app/key
  worker:
    image: {IMAGE}
    command: ["sleep", "600"]
    network_mode: none
    secrets:
      - db_pass
secrets:
  db_pass:
    file: ./db_pass.txt
  tok:
    external: true
    name: shared_token
"""


@pytest.fixture(params=["cli", "daemon"])
def rotator(
    request: pytest.FixtureRequest,
    clean_environ: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Iterator[str]:
    """Who rotates: the CLI on the local store, or a daemon (same state and runtime
    directories) the CLI hands the rotation to."""
    if request.param == "cli":
        yield "cli"
        return
    root = tmp_path / "daemon"
    (root / "sock").mkdir(parents=True)
    socket, config = root / "sock" / "secretd.sock", root / "secretd.toml"
    world = World(root, socket, config, clean_environ["runtime"], clean_environ["state"],
                  root / "daemon.log")  # fmt: skip
    world.config.write_text("[daemon]\nengines = []\n")
    started = Daemon(world)
    started.start()
    monkeypatch.setenv("SECRETD_HOST", world.host)
    yield "daemon"
    started.stop()


def test_secret_rotate_reaches_a_running_compose_container(
    project: Project,  # noqa: F811
    rotator: str,
) -> None:
    project.write(COMPOSE, **{"db_pass.txt": "db-value-1"})
    created = project.runner("secret", "create", "shared_token", "-", input="tok-value-1")
    assert created.returncode == 0, created.stderr
    up = project.secretd("up", "-d")
    assert up.returncode == 0, up.stderr
    web = container(project, "web")
    read = ("cat", "/run/secrets/tok", "/etc/app/key", "/run/secrets/db_pass")
    assert project.docker("exec", web, *read) == "tok-value-1tok-value-1db-value-1"

    rotated = project.runner("secret", "rotate", "shared_token", "-", input="tok-value-2")
    assert rotated.returncode == 0, rotated.stderr
    assert rotated.stderr == ""
    wait_for(
        lambda: project.docker("exec", web, *read) == "tok-value-2tok-value-2db-value-1",
        "the new value in the web container",
        timeout=10,
    )
    assert project.docker("exec", container(project, "worker"), "ls", "/run/secrets") == "db_pass\n"
    down = project.secretd("down", "-t", "0")
    assert down.returncode == 0, down.stderr
    assert project.mounts() == []
