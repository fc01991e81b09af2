"""A leased (dynamic) secret is not pushed: secretd revokes its leases when the command
ends, so the copy in Swarm would be a dead credential. A real OpenBao issues one (a PKI
certificate with a lease)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Runner
from tests.support.cli import refused
from tests.support.swarm import Swarm
from tests.vault.conftest import openbao  # noqa: F401 - fixture
from tests.vault.servers import ROOT_TOKEN, BaoServer, leases

pytestmark = [pytest.mark.docker, pytest.mark.root, pytest.mark.vault]


def test_a_leased_secret_is_refused_and_its_lease_revoked(
    secretd: Runner,
    swarm: Swarm,
    openbao: BaoServer,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VAULT_ADDR", openbao.address)
    monkeypatch.setenv("VAULT_TOKEN", ROOT_TOKEN)
    ref = "tls=vault:pki/issue/web?common_name=a.example.com&ttl=1h#certificate"
    for args in (("push", ref), ("push", ref, "--dry-run")):
        done = secretd("swarm", *args)
        refused(done, 2, "'tls' is leased")
        assert "BEGIN" not in done.stdout + done.stderr
    assert leases(openbao, "pki/issue/web/") == set()
    listed = swarm.docker("secret", "ls", "--filter", "label=io.secretd.source=tls", "-q")
    assert listed == ""
