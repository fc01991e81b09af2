"""A real single-node Docker Swarm for the suites that need one (swarm, compose parity):
the ``swarm`` session fixture, on top of ``dockerd`` (tests/support/dockerd.py).

``docker swarm init`` on the test daemon, unless it is already a manager, on loopback and
on free ports (its control port, 2377 by default, and VXLAN's 4789 may be taken by another
test session's swarm on this machine). The swarm is left at the end of the session only
if this fixture made it, so a suite sharing the daemon keeps whatever it had; plain
containers keep working meanwhile.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from tests.support.dockerd import Dockerd
from tests.support.waiting import free_port, wait_for

__all__ = ["Swarm", "init_swarm", "swarm"]


@dataclass
class Swarm:
    docker: Dockerd

    def wait(self, what: str, check: Callable[[], bool], timeout: float = 60) -> None:
        """Poll ``check`` until it holds (swarm converges in its own time; each check
        runs the docker CLI, hence the longer interval)."""
        wait_for(check, what, timeout, interval=0.2)

    def task_container(self, service: str, not_in: frozenset[str] = frozenset()) -> str:
        """The id of the service's running task container (a new one, if ``not_in`` lists
        the old ones), once it runs."""
        found: list[str] = []
        label = f"label=com.docker.swarm.service.name={service}"

        def running() -> bool:
            ids = self.docker("ps", "-q", "--no-trunc", "--filter", label).split()
            found[:] = [i for i in ids if i not in not_in]
            return bool(found)

        self.wait(f"a running task of {service}", running)
        return found[0]


def init_swarm(docker: Dockerd) -> None:
    """``docker swarm init`` on loopback and on free ports (its control port, 2377 by
    default, and VXLAN's 4789 may be taken by another swarm on this machine)."""
    listen = f"127.0.0.1:{free_port()}"
    docker(
        "swarm", "init", "--advertise-addr", listen, "--listen-addr", listen,
        "--data-path-port", str(free_port(socket.SOCK_DGRAM, below=49152)),
    )  # fmt: skip


@pytest.fixture(scope="session")
def swarm(dockerd: Dockerd) -> Iterator[Swarm]:
    state = dockerd("info", "--format", "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}")
    made = state.split() != ["active", "true"]
    if made:
        init_swarm(dockerd)
    try:
        yield Swarm(dockerd)
    finally:
        if made:
            dockerd("swarm", "leave", "--force", check=False)
