"""One compose file, deployed as a real Swarm stack (plain ``docker stack deploy``) and run
by ``secretd compose up``: the same ``ls -ln /run/secrets``, the same config file, the
same contents (where Swarm is right: one target per secret, see docs/compose.md)."""

from __future__ import annotations

import secrets

import pytest

from tests.compose.conftest import IMAGE, Project
from tests.support.swarm import Swarm, swarm  # noqa: F401 - fixture

pytestmark = [pytest.mark.docker, pytest.mark.root]

PARITY = """\
services:
  app:
    image: {image}
    command: ["sleep", "600"]
    secrets:
      - source: key
        target: app.key
        uid: "1000"
        gid: "1000"
        mode: 0400
      - shared
      - source: token
        mode: 0440
    configs:
      - source: conf
        target: /etc/app.conf
        mode: 0440
        uid: "1000"
secrets:
  key:
    file: ./key.txt
  token:
    file: ./token.txt
  shared:
    external: true
    name: {shared}
configs:
  conf:
    file: ./app.conf
"""

LOOK = (
    "ls -ln /run/secrets /etc/app.conf | grep -v '^total' | awk '{print $1, $3, $4, $5, $NF}';"
    "cat /run/secrets/*"
)


def test_secretd_compose_gives_what_a_swarm_stack_gives(
    project: Project, swarm: Swarm  # noqa: F811 - the fixture imported above
) -> None:
    suffix = secrets.token_hex(3)
    shared = f"shared{suffix}"
    values = {name: f"{name}-{secrets.token_hex(8)}" for name in ("key", "token", "shared")}
    project.write(
        PARITY.format(image=IMAGE, shared=shared),
        **{"key.txt": values["key"], "token.txt": values["token"], "app.conf": "level=info\n"},
    )
    docker = swarm.docker
    docker("secret", "create", shared, "-", input=values["shared"])
    stack = f"par{suffix}"
    # Debian's docker CLI 20.10 deploys no file without a version (newer ones ignore it);
    # compose reads the same file without one, as compose v2 files are written.
    deployed = project.path / "stack.yml"
    deployed.write_text('version: "3.9"\n' + (project.path / "compose.yml").read_text())
    try:
        docker("stack", "deploy", "-c", str(deployed), stack)
        in_swarm = docker("exec", swarm.task_container(f"{stack}_app"), "sh", "-c", LOOK)
    finally:
        docker("stack", "rm", stack, check=False)
    created = project.runner("secret", "create", shared, "-", input=values["shared"])
    assert created.returncode == 0, created.stderr
    up = project.secretd("up", "-d")
    assert up.returncode == 0, up.stderr
    (cid,) = project.containers()
    in_compose = project.docker("exec", cid, "sh", "-c", LOOK)

    assert in_compose == in_swarm
    assert "-r-------- 1000 1000" in in_compose and values["shared"] in in_compose
    assert project.secretd("down", "-t", "0").returncode == 0
    assert project.mounts() == []
    swarm.wait("the stack's secrets to be free", lambda: _removed(docker, shared))


def _removed(docker: object, name: str) -> bool:
    done = docker("secret", "rm", name, check=False)  # type: ignore[operator]
    return isinstance(done, str) and name in done
