"""A real single-node swarm (tests/support/swarm.py) on the session's dockerd, and a second
dockerd in no swarm that also listens on ``tcp://127.0.0.1`` with mutual TLS: a manager
reached as one on another machine would be, once a test makes it one."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.certs import certificates
from tests.support.daemons import start_dockerd, stop
from tests.support.dockerd import Dockerd, docker_env, dockerd  # noqa: F401 - fixtures
from tests.support.engines import bound  # noqa: F401 - fixtures
from tests.support.swarm import swarm  # noqa: F401 - fixtures
from tests.support.waiting import free_port


@dataclass
class Remote:
    docker: Dockerd  # its unix socket, for the tests' own look
    tcp: str  # tcp://127.0.0.1:PORT, mutual TLS
    certs: Path  # a client's DOCKER_CERT_PATH (ca.pem, cert.pem, key.pem)


@pytest.fixture(scope="session")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    """Left in no swarm: a test that makes it a manager leaves the swarm again."""
    certs = tmp_path_factory.mktemp("tls") / "certs"
    certificates(certs)
    port = free_port()
    root = Path(tempfile.mkdtemp(prefix="secretd-remote-dockerd-"))
    flags = [
        f"--host=tcp://127.0.0.1:{port}", "--tlsverify", f"--tlscacert={certs / 'ca.pem'}",
        f"--tlscert={certs / 'server.pem'}", f"--tlskey={certs / 'server-key.pem'}",
    ]  # fmt: skip
    try:
        proc, host = start_dockerd(root, extra=flags)
    except RuntimeError as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(str(exc))
    try:
        yield Remote(Dockerd(host), f"tcp://127.0.0.1:{port}", certs)
    finally:
        stop(proc)
        shutil.rmtree(root, ignore_errors=True)
