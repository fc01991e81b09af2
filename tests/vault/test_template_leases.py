"""A leased secret that only a template reads: its lease lasts as long as the run (the
rendered file holds the credential) and is given back when the run ends."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.waiting import wait_for
from tests.vault.servers import BaoServer, leases
from tests.vault.test_run_vault import write_config

pytestmark = [pytest.mark.vault, pytest.mark.root]

CERT = "vault:pki/issue/web?common_name=a.example.com&ttl=60s#certificate"


def test_a_template_only_lease_lives_with_the_run(openbao: BaoServer, tmp_path: Path) -> None:
    write_config(tmp_path, openbao.address)
    (tmp_path / "cert.tmpl").write_text(f'{{{{ secret("{CERT}") }}}}\n')
    before = leases(openbao, "pki/issue/web/")
    sync = tmp_path / "sync"  # tmp_path itself is shadowed in the run for etc/app
    sync.mkdir()
    ready, go = sync / "ready", sync / "go"
    command = [
        sys.executable, "-m", "secretd", "run", "--no-daemon",
        "--template", f"source=cert.tmpl,target={tmp_path}/etc/app/cert.pem",
        "--", "sh", "-c",
        f"head -1 {tmp_path}/etc/app/cert.pem; touch {ready}; "
        f"while [ ! -e {go} ]; do sleep 0.05; done",
    ]  # fmt: skip
    with subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as run:
        try:
            wait_for(ready.exists, "the command to start")
            during = leases(openbao, "pki/issue/web/")
            go.touch()
            stdout, stderr = run.communicate(timeout=60)
        finally:
            run.kill()  # a failed wait must not leave the run waiting for 'go' for ever
    assert (run.returncode, stdout, stderr) == (0, "-----BEGIN CERTIFICATE-----\n", "")
    assert len(during - before) == 1, "held while the command ran"
    assert leases(openbao, "pki/issue/web/") == before, "given back when it ended"
