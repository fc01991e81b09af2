"""A real Docker Engine for the docker tests (tests/support/dockerd.py), the session's
single-node swarm (tests/support/swarm.py, shared with tests/swarm and tests/compose), and
the helpers the docker and podman tests share."""

from __future__ import annotations

from tests.support.dockerd import IMAGE, Dockerd, docker_env, dockerd  # noqa: F401 - fixtures
from tests.support.engines import bound, unmount_leftovers  # noqa: F401 - fixtures
from tests.support.swarm import swarm  # noqa: F401 - fixtures

__all__ = ["IMAGE", "Dockerd"]
