"""A re-issued lease whose files cannot be swapped in is given back at once: a real OpenBao
PKI lease, a real sandbox tmpfs filled to the brim while the command runs."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.waiting import wait_for
from tests.vault.servers import BaoServer, leases
from tests.vault.test_run_vault import SHOW_TLS, TLS, pairs, write_config

pytestmark = [pytest.mark.vault, pytest.mark.root]


def secrets_tmpfs(pid: int) -> str:
    """The tmpfs secretd keeps a descriptor on to swap files: its root holds ``secrets/``."""
    for fd in os.listdir(f"/proc/{pid}/fd"):
        path = f"/proc/{pid}/fd/{fd}"
        try:
            if os.path.isdir(path) and "secrets" in os.listdir(path):
                return path
        except OSError:
            continue
    raise AssertionError("secretd holds no secrets tmpfs")


def fill(directory: str) -> None:
    fd = os.open(f"{directory}/filler", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)


def test_a_reissued_lease_that_cannot_be_swapped_in_is_revoked(
    openbao: BaoServer, tmp_path: Path
) -> None:
    write_config(tmp_path, openbao.address)
    before = leases(openbao, "pki/issue/web/")
    seen = len(openbao.requests())
    ready = tmp_path / "ready"
    command = [
        sys.executable, "-m", "secretd", "run", "--no-daemon", "--secret", TLS.format(ttl="3s"),
        "--", "sh", "-c", f"{SHOW_TLS}; touch {ready}; sleep 4; {SHOW_TLS}",
    ]  # fmt: skip
    with subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as run:
        wait_for(ready.exists, "the command to start")
        fill(secrets_tmpfs(run.pid))  # before the re-issue at 2/3 of the lease: 2 s
        stdout, stderr = run.communicate(timeout=60)
    assert run.returncode == 0, stderr
    (first, _), (second, _) = pairs(stdout)
    assert first.serial_number == second.serial_number  # the command kept its files
    assert (
        "keeping tls alive failed; the command keeps its files: cannot replace the files of "
        "tls: No space left on device"
    ) in stderr.decode()
    during = openbao.requests()[seen:]
    issued = during.count(("update", "pki/issue/web"))
    assert issued >= 2  # the first, and at least one re-issue that could not be swapped in
    assert during.count(("update", "sys/leases/revoke")) == issued
    assert leases(openbao, "pki/issue/web/") == before
