"""Concurrent runs of one upstream secret through one daemon, counted in OpenBao's audit
log: a KV secret read by runs that start together is one read (single-flight); a leased
one (a PKI certificate) is one lease per run, since each run gives its own back.

The daemon reaches OpenBao through a relay that holds each answer for ``LATENCY``
seconds, as a distant server would: the 200 requests take a few hundred milliseconds to
reach the daemon's broker, longer than a loopback read, and must all meet one read."""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Iterator

import pytest

from secretd import protocol
from secretd.spec import RunSpec
from tests.daemon.conftest import Daemon, World
from tests.support.relay import Relay, relay
from tests.vault.servers import BaoServer

from .conftest import vault_backed

pytestmark = [pytest.mark.root, pytest.mark.vault]

RUNS = 200
LEASED_RUNS = 20
PATH = f"kv1/flight-{uuid.uuid4().hex[:8]}"
LATENCY = 1.0


@pytest.fixture
def held(openbao: BaoServer) -> Iterator[Relay]:
    with relay(("127.0.0.1", openbao.port), LATENCY) as server:
        yield server


@pytest.fixture
def vault_daemon(world: World, openbao: BaoServer, held: Relay) -> Iterator[Daemon]:
    openbao.client().write_data(PATH, data={"password": "s3cret-flight-value"})
    # the clients connect first and send together: the connections wait for the last one
    world.config.write_text(
        world.config.read_text().replace("read_timeout = 1.0", "read_timeout = 60.0")
    )
    yield from vault_backed(
        world,
        f"http://127.0.0.1:{held.port}",
        f'[secrets.kv]\nsource = "vault:{PATH}#password"\n\n'
        "[secrets.tls]\nsource = "
        '"vault:pki/issue/web?common_name=f.example.com&ttl=60s#certificate"\n',
    )


def run(world: World, name: str, gate: threading.Barrier) -> tuple[int, bytes]:
    """One run request, sent once every other client has connected; status and stdout."""
    spec = RunSpec(command=("cat", f"/run/secrets/{name}")).to_json()
    request = protocol.request("run", spec=spec, secrets=[name], cwd=str(world.root))
    read, write = os.pipe()
    null = os.open(os.devnull, os.O_RDWR)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(world.socket))
            chan = protocol.Channel(sock)
            gate.wait(60)
            chan.send(request, [null, write, null])
            os.close(write)
            write = -1
            reply: dict[str, object] = {"event": "started"}
            while reply.get("event") == "started":
                reply, _ = chan.receive(120)
        with os.fdopen(read, "rb") as out:
            read = -1
            return int(str(reply.get("status", -1))), out.read()
    finally:
        for fd in (null, write, read):
            if fd >= 0:
                os.close(fd)


def together(world: World, name: str, runs: int) -> list[tuple[int, bytes]]:
    gate = threading.Barrier(runs)
    results: list[tuple[int, bytes]] = [(-2, b"")] * runs

    def one(n: int) -> None:
        results[n] = run(world, name, gate)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(runs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    return results


def test_runs_starting_together_read_a_kv_secret_once_and_lease_per_run(
    world: World, openbao: BaoServer, vault_daemon: Daemon
) -> None:
    seen = len(openbao.requests())
    results = together(world, "kv", RUNS)
    assert results == [(0, b"s3cret-flight-value")] * RUNS
    reads = openbao.requests()[seen:].count(("read", PATH))
    assert reads == 1, f"{reads} upstream reads for {RUNS} runs"

    seen = len(openbao.requests())
    results = together(world, "tls", LEASED_RUNS)
    assert [status for status, _ in results] == [0] * LEASED_RUNS
    assert len({out for _, out in results}) == LEASED_RUNS  # a certificate each
    during = openbao.requests()[seen:]
    assert during.count(("update", "pki/issue/web")) == LEASED_RUNS
    assert during.count(("update", "sys/leases/revoke")) == LEASED_RUNS
