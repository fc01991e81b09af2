"""A manager on another machine, as Docker documents one: ``tcp://`` with mutual TLS
(``DOCKER_TLS_VERIFY``, ``DOCKER_CERT_PATH``). Here the ``remote`` dockerd on loopback
(conftest.py), its certificates signed by a CA of the test's own."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import Runner
from tests.support.cli import refused
from tests.support.engines import Bind
from tests.support.swarm import init_swarm
from tests.swarm.conftest import Remote

pytestmark = [pytest.mark.docker, pytest.mark.root]


def test_push_to_a_manager_over_tls(
    secretd: Runner, bound: Bind, remote: Remote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Values reach it over mutual TLS, checked against the swarm's own CA even where
    REQUESTS_CA_BUNDLE names another (requests would let that one win)."""
    local = remote.docker
    init_swarm(local)
    try:
        values = bound("tok")
        monkeypatch.setenv("DOCKER_HOST", remote.tcp)
        monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
        monkeypatch.setenv("DOCKER_CERT_PATH", str(remote.certs))
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
        done = secretd("swarm", "push", "tok")
        assert done.returncode == 0, done.stderr
        assert values["tok"] not in done.stdout + done.stderr
        listed = local("secret", "ls", "--filter", "label=io.secretd.source=tok",
                       "--format", "{{.Name}}")  # fmt: skip
        assert listed.split() == [done.stdout.split()[2]]

        elsewhere = tmp_path / "elsewhere"
        shutil.copytree(remote.certs, elsewhere)
        (elsewhere / "ca.pem").write_bytes((remote.certs / "cert.pem").read_bytes())
        monkeypatch.setenv("DOCKER_CERT_PATH", str(elsewhere))
        refused(secretd("swarm", "push", "tok"), 125, "did not pass the TLS check")

        monkeypatch.setenv("DOCKER_CERT_PATH", str(tmp_path))
        refused(secretd("swarm", "push", "tok"), 2, f"{tmp_path} lacks cert.pem and key.pem")
    finally:
        local("swarm", "leave", "--force", check=False)
