"""OpenBao stopped, slowed and answering 5xx, before and during a run of the real CLI.

Before the command starts, a fault is one line and exit 125; during the run (while a
3-second certificate lease is kept alive) the command keeps its files, each failure is
one log line, and requests that create something are sent once per attempt. Either way
the run leaves no mount in any namespace and no process behind.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.hostile_http import HostileServer, Reply, answer, forward, hostile_server
from tests.support.leftovers import mounted_anywhere, processes_with
from tests.vault.servers import ROOT_TOKEN, BaoServer, prepare

pytestmark = [pytest.mark.vault, pytest.mark.root]

ISSUE = "POST /v1/pki/issue/web"
TLS = "tls=vault:pki/issue/web?common_name=a.example.com&ttl=3s#certificate,private_key"


@dataclass
class Fault:
    """What the proxy in front of OpenBao does now: pass, answer 503, or stall."""

    mode: str = "pass"
    stall: float = 3.0

    def before(self) -> Reply | None:
        if self.mode == "503":
            return answer({"errors": ["down for maintenance"]}, 503)
        if self.mode == "stall":
            time.sleep(self.stall)
        return None


@pytest.fixture
def proxied(own_openbao: BaoServer) -> Iterator[tuple[HostileServer, Fault]]:
    prepare(own_openbao)
    fault = Fault()
    with hostile_server() as proxy:
        proxy.fallback = forward(own_openbao.address, fault.before)
        yield proxy, fault


@dataclass
class Run:
    secrets_dir: str
    marker: str
    process: subprocess.Popen[bytes]

    def finish(self) -> tuple[int, str, bytes]:
        try:
            stdout, stderr = self.process.communicate(timeout=60)
        finally:
            if self.process.poll() is None:
                self.process.terminate()  # secretd ends the command and its mount
                self.process.communicate(timeout=30)
        return self.process.returncode, stderr.decode(), stdout

    def leftovers(self) -> tuple[list[int], list[int]]:
        return mounted_anywhere(self.secrets_dir), processes_with(self.marker)


def start(address: str, seconds: float = 0.0, timeout: float = 30) -> Run:
    """``secretd run`` of a command that shows its certificate, sleeps, shows it again."""
    Path("secretd.toml").write_text(
        f'[providers.vault]\naddress = "{address}"\ntoken = "{ROOT_TOKEN}"\ntimeout = {timeout}\n'
    )
    secrets_dir = f"/run/secretd-fault-{secrets.token_hex(4)}"
    marker = f"{seconds}.{secrets.randbelow(10**6):06d}"  # a sleep of its own
    show = f"cat {secrets_dir}/tls/certificate"
    command = [
        sys.executable, "-m", "secretd", "run", "--secrets-dir", secrets_dir, "--secret", TLS,
        "--", "sh", "-c", f"{show}; sleep {marker}; {show}",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return Run(secrets_dir, marker, process)


def assert_one_line_each(stderr: str) -> None:
    assert "Traceback" not in stderr
    assert all(line.startswith("secretd: ") for line in stderr.splitlines()), stderr


def test_stopped_before_the_run(own_openbao: BaoServer) -> None:
    own_openbao.stop()
    run = start(own_openbao.address)
    status, stderr, stdout = run.finish()
    assert (status, stdout) == (125, b"")
    assert stderr == (
        f"secretd: vault at {own_openbao.address} unreachable: check that the server runs "
        "and VAULT_ADDR or address in [providers.vault]\n"
    )
    assert run.leftovers() == ([], [])


def test_503_before_the_run_is_retried_for_reads_then_reported(
    proxied: tuple[HostileServer, Fault],
) -> None:
    proxy, fault = proxied
    fault.mode = "503"
    run = start(proxy.url)
    status, stderr, _ = run.finish()
    assert status == 125
    assert stderr == (
        f"secretd: vault at {proxy.url} is sealed or unavailable (HTTP 503): "
        "unseal it, or wait for an active node\n"
    )
    assert [(s.method, s.path) for s in proxy.seen] == [("GET", "/v1/auth/token/lookup-self")] * 3
    assert run.leftovers() == ([], [])


def test_stopped_during_the_run(own_openbao: BaoServer) -> None:
    prepare(own_openbao)
    run = start(own_openbao.address, seconds=3)
    time.sleep(1)
    own_openbao.stop()
    status, stderr, stdout = run.finish()
    assert status == 0, stderr
    first, second = stdout.split(b"-----END CERTIFICATE-----")[:2]
    assert first.strip() == second.strip()  # the command kept its files
    assert (
        f"keeping tls alive failed; the command keeps its files: vault at "
        f"{own_openbao.address} unreachable"
    ) in stderr
    assert_one_line_each(stderr)
    assert run.leftovers() == ([], [])


def test_503_during_the_run_sends_each_issue_once(proxied: tuple[HostileServer, Fault]) -> None:
    proxy, fault = proxied
    run = start(proxy.url, seconds=4)
    time.sleep(1)
    fault.mode = "503"
    seen = len(proxy.seen)
    status, stderr, _ = run.finish()
    assert status == 0, stderr
    failed = stderr.count(
        f"keeping tls alive failed; the command keeps its files: vault at {proxy.url} is "
        "sealed or unavailable (HTTP 503)"
    )
    during = [f"{s.method} {s.path}" for s in proxy.seen[seen:]]
    assert failed >= 2
    assert during.count(ISSUE) == failed  # one POST per attempt: never retried
    assert during.count("PUT /v1/sys/leases/revoke") == 1
    assert f"could not revoke the lease of tls: vault at {proxy.url} is sealed" in stderr
    assert_one_line_each(stderr)
    assert run.leftovers() == ([], [])


def test_stalled_during_the_run_ends_each_request_at_its_deadline(
    proxied: tuple[HostileServer, Fault],
) -> None:
    proxy, fault = proxied
    run = start(proxy.url, seconds=4, timeout=1)
    time.sleep(1)
    fault.mode = "stall"
    started = time.monotonic()
    status, stderr, _ = run.finish()
    assert status == 0, stderr
    assert (
        f"keeping tls alive failed; the command keeps its files: vault at {proxy.url} "
        "did not answer within 1s"
    ) in stderr
    assert f"could not revoke the lease of tls: vault at {proxy.url} did not answer" in stderr
    assert time.monotonic() - started < 15  # the command's 4 s, and 1 s per stalled request
    assert_one_line_each(stderr)
    assert run.leftovers() == ([], [])
