"""A real Docker Engine for the suites that need one, and a busybox image built without a
registry: the ``dockerd`` session fixture, shared by tests/docker, tests/swarm and others
(a conftest imports it).

If a daemon already answers on /var/run/docker.sock it is used as is. Otherwise one
``dockerd --iptables=false --bridge=none`` is started for the whole session with a private
data root, exec root, pid file and socket (tests/support/daemons.py), and stopped at the end.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from secretd.runtime.engines.endpoint import socket_answers
from tests.support.daemons import IMAGE, SYSTEM_DOCKER_SOCKET, import_busybox, start_dockerd, stop

__all__ = ["IMAGE", "Dockerd", "docker_env", "dockerd"]

TLS_VARIABLES = ("DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_TLS")


@dataclass
class Dockerd:
    host: str

    def env(self) -> dict[str, str]:
        """The environment for the docker CLI on this daemon's socket, without the TLS
        settings a test set for another endpoint: CLI 20.10 (Debian's) speaks TLS over a
        unix socket too when ``DOCKER_TLS_VERIFY`` is set, and then cannot connect."""
        env = {key: value for key, value in os.environ.items() if key not in TLS_VARIABLES}
        return {**env, "DOCKER_HOST": self.host}

    def __call__(self, *args: str, check: bool = True, input: str | None = None) -> str:
        """Run the docker CLI against this daemon; its stdout."""
        done = subprocess.run(
            ["docker", *args], env=self.env(), capture_output=True, text=True, input=input,
            timeout=60,
        )  # fmt: skip
        if check and done.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed: {done.stderr}")
        return done.stdout


@pytest.fixture(scope="session")
def dockerd() -> Iterator[Dockerd]:
    if shutil.which("dockerd") is None or shutil.which("docker") is None:
        pytest.fail("docker.io is not installed (make setup installs it)")
    if os.geteuid() != 0:
        pytest.skip("dockerd needs root")
    if socket_answers(SYSTEM_DOCKER_SOCKET):
        daemon = Dockerd(f"unix://{SYSTEM_DOCKER_SOCKET}")
        import_busybox("docker", daemon.env())
        yield daemon
        return
    root = Path(tempfile.mkdtemp(prefix="secretd-dockerd-"))
    try:
        proc, host = start_dockerd(root)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    daemon = Dockerd(host)
    try:
        import_busybox("docker", daemon.env())
        yield daemon
    finally:
        daemon("rm", "-f", *daemon("ps", "-aq").split(), check=False)
        stop(proc)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(autouse=True)
def docker_env(dockerd: Dockerd, monkeypatch: pytest.MonkeyPatch) -> Dockerd:
    """Point secretd (and the docker CLI) at the test daemon."""
    monkeypatch.setenv("DOCKER_HOST", dockerd.host)
    return dockerd
