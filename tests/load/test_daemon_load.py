"""200 runs from 16 concurrent clients through a real daemon, while the PKI certificates
they hold (2-second OpenBao leases, never renewable) are re-issued under them. Afterwards
the daemon is back where it started: no failure, no mount, descriptor or process left,
every lease revoked, its memory within 10 % of what it used after a warm-up round."""

from __future__ import annotations

import os
import re
import secrets
import socket
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from secretd import protocol
from secretd.spec import RunSpec
from tests.daemon.conftest import CANARY, Daemon, World
from tests.support.waiting import wait_for
from tests.vault.servers import BaoServer, leases

from .conftest import vault_backed

pytestmark = [pytest.mark.root, pytest.mark.vault]

CLIENTS = 16
RUNS = 200
WARM_UP = 32
LEASED = "pki/issue/web/"
# Every fifth run outlives 2/3 of its certificate's lease: the daemon issues a new one and
# swaps the files while the others come and go. The command shows the serial before and
# after, and a word no other process on the machine has in its command line.
SHOW = "openssl x509 -noout -serial -in /run/secrets/tls/certificate"
SCRIPT = f'cat /run/secrets/api_key; echo; {SHOW}; sleep "$1"; {SHOW}'


@pytest.fixture
def leasing_daemon(world: World, openbao: BaoServer) -> Iterator[Daemon]:
    yield from vault_backed(
        world,
        openbao.address,
        "[secrets.tls]\nsource = "
        '"vault:pki/issue/web?common_name=a.example.com&ttl=2s#certificate,private_key"\n',
    )


def one_run(world: World, marker: str, seconds: float) -> tuple[int, str]:
    """A run as the CLI sends it (its stdout a pipe we read); the status and the output."""
    spec = RunSpec(command=("sh", "-c", SCRIPT, marker, str(seconds))).to_json()
    request = protocol.request("run", spec=spec, secrets=["api_key", "tls"], cwd=str(world.root))
    read, write = os.pipe()
    null = os.open(os.devnull, os.O_RDWR)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(world.socket))
            chan = protocol.Channel(sock)
            chan.send(request, [null, write, null])
            os.close(write)
            write = -1
            while True:
                reply, _ = chan.receive(60)
                if reply.get("event") != "started":
                    break
        status = int(reply["status"]) if reply.get("event") == "exit" else -1
        with os.fdopen(read, "rb") as out:
            read = -1
            return status, out.read().decode() if status != -1 else str(reply)
    finally:
        for fd in (null, write, read):
            if fd >= 0:
                os.close(fd)


def load(world: World, runs: int, marker: str) -> list[tuple[int, str]]:
    with ThreadPoolExecutor(CLIENTS) as pool:
        jobs = [pool.submit(one_run, world, marker, 1.6 if n % 5 == 0 else 0) for n in range(runs)]
        return [job.result() for job in jobs]


def rss(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    (line,) = [line for line in status.splitlines() if line.startswith("VmRSS:")]
    return int(line.split()[1])


def mounts(pid: int | str, world: World) -> list[str]:
    """Mount points of the daemon's world or at /run/secrets (other tests on the machine
    mount and unmount their own things meanwhile)."""
    points = [line.split()[4] for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines()]
    return [p for p in points if p.startswith(str(world.root)) or p.startswith("/run/secrets")]


def descriptors(pid: int) -> Counter[str]:
    """The daemon's descriptors by kind (``pipe``, ``unix``, a path...) once it holds no
    client connection: its listener is then its only Unix socket. TCP sockets are left
    out: its pool of keep-alive connections to OpenBao grows with the concurrency."""

    def kinds() -> Counter[str]:
        unix = {line.split()[-2] for line in Path("/proc/net/unix").read_text().splitlines()[1:]}
        tcp = {
            line.split()[9]
            for name in ("tcp", "tcp6")
            for line in Path(f"/proc/net/{name}").read_text().splitlines()[1:]
        }
        found: Counter[str] = Counter()
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except FileNotFoundError:  # closed meanwhile
                continue
            inode = link[8:-1] if link.startswith("socket:[") else None
            if inode is None:
                found[re.sub(r":\[\d+\]$", "", link)] += 1
            elif inode not in tcp:
                found["unix" if inode in unix else "socket"] += 1
        return found

    wait_for(lambda: kinds()["unix"] == 1, "the daemon to close its client connections")
    return kinds()


def children(pid: int) -> list[str]:
    return [
        child
        for task in os.listdir(f"/proc/{pid}/task")
        for child in Path(f"/proc/{pid}/task/{task}/children").read_text().split()
    ]


def processes_with(word: str) -> list[int]:
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            if word.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                found.append(int(entry))
        except OSError:
            continue
    return found


def test_two_hundred_runs_while_leases_are_reissued_leave_nothing_behind(
    world: World,
    leasing_daemon: Daemon,
    openbao: BaoServer,
) -> None:
    daemon, marker = leasing_daemon, f"load-{secrets.token_hex(4)}"
    assert all(status == 0 for status, _ in load(world, WARM_UP, marker))
    wait_for(lambda: not children(daemon.pid), "the warm-up's commands to be reaped")
    fds, memory = descriptors(daemon.pid), rss(daemon.pid)
    host_mounts, daemon_mounts = mounts("self", world), mounts(daemon.pid, world)
    before, seen = leases(openbao, LEASED), len(openbao.requests())

    started = time.monotonic()
    results = load(world, RUNS, marker)
    took = time.monotonic() - started

    failures = [(status, out) for status, out in results if status != 0]
    assert failures == [], failures[:3]
    for n, (_, out) in enumerate(results):
        key, first, second = out.splitlines()
        assert key == CANARY and first.startswith("serial=") and second.startswith("serial=")
        if n % 5 == 0:  # outlived 2/3 of its lease: a new certificate under it
            assert first != second, out
    during = openbao.requests()[seen:]
    issued = during.count(("update", "pki/issue/web"))
    assert issued >= RUNS + RUNS // 5
    assert during.count(("update", "sys/leases/revoke")) == issued
    assert leases(openbao, LEASED) == before

    wait_for(lambda: not children(daemon.pid), "every command to be reaped")
    assert processes_with(marker) == []
    assert descriptors(daemon.pid) == fds
    assert (mounts("self", world), mounts(daemon.pid, world)) == (host_mounts, daemon_mounts)
    after = rss(daemon.pid)
    assert after <= memory * 1.10, f"VmRSS {memory} kB after the warm-up, {after} kB after"
    print(f"{RUNS} runs in {took:.1f} s; VmRSS {memory} -> {after} kB; {issued} certificates")
