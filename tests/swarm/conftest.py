"""A real single-node swarm (tests/support/swarm.py) on the session's dockerd."""

from __future__ import annotations

from tests.support.dockerd import docker_env, dockerd  # noqa: F401 - fixtures
from tests.support.engines import bound  # noqa: F401 - fixtures
from tests.support.swarm import swarm  # noqa: F401 - fixtures
