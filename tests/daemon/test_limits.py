"""One user cannot exhaust the daemon: connections per uid and in total, the time to send a
request, and the secrets one run or one user's runs may hold."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import CANARY, NOBODY, Daemon, World, client, ping, wait_for

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parents[2]
OTHER = 4242  # a second granted user, without a passwd entry
HOLDER = r"""
import json, select, socket, sys
from secretd import protocol
path, count = sys.argv[1], int(sys.argv[2])
socks = []
for _ in range(count):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    socks.append(sock)
def answer(sock, timeout):
    try:
        reply, _ = protocol.Channel(sock).receive(timeout)
    except protocol.ProtocolError:
        return "closed"
    return reply["error"]
sys.stdin.readline()
answered = set()  # refusals come at once: wait until none came for a second
while True:
    ready = select.select([s for s in socks if s not in answered], [], [], 1.0)[0]
    if not ready:
        break
    answered.update(ready)
held = [s for s in socks if s not in answered]
print(json.dumps({"held": len(held), "refused": sorted({answer(s, 5) for s in answered})}))
sys.stdout.flush()
sys.stdin.readline()
print(json.dumps({"dropped": sorted({answer(s, 30) for s in held})}))
"""


def limits_config(world: World, extra: str) -> None:
    """The world's config with [daemon] limits and ``OTHER`` granted api_key like nobody."""
    text = world.config.read_text().replace("[daemon]\n", f"[daemon]\n{extra}")
    text = text.replace('users = ["nobody"]', f'users = ["nobody", "{OTHER}"]')
    world.config.write_text(text)


@pytest.fixture
def limited(world: World) -> Iterator[Daemon]:
    limits_config(world, "max_connections = 40\n")
    world.config.write_text(
        world.config.read_text().replace("read_timeout = 1.0", "read_timeout = 10")
    )
    started = Daemon(world)
    started.start()
    yield started
    if started.proc is not None and started.proc.poll() is None:
        assert started.stop() == 0, started.logs()


def setpriv(uid: int) -> list[str]:
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"]


def holder(world: World, uid: int, count: int) -> subprocess.Popen[str]:
    """``count`` connections of ``uid`` that never send a request."""
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [*setpriv(uid), sys.executable, "-c", HOLDER, str(world.socket), str(count)],
        env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip


def ask(proc: subprocess.Popen[str]) -> dict[str, object]:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("\n")
    proc.stdin.flush()
    return dict(json.loads(proc.stdout.readline()))


def test_a_user_holding_connections_locks_nobody_else_out(world: World, limited: Daemon) -> None:
    assert client(world, "run", "--secret", "api_key", "--", "true").returncode == 0
    baseline = limited.idle_fds()  # after a run: the access log stays open from its first line
    connected = time.monotonic()
    theirs = holder(world, NOBODY, 300)
    others: subprocess.Popen[str] | None = None
    try:
        assert ask(theirs) == {
            "held": 32,
            "refused": [
                "uid 65534 already has 32 connections to the secretd daemon, its limit: close "
                "some, or raise [daemon] max_connections_per_user in its config"
            ],
        }
        others = holder(world, OTHER, 50)
        assert ask(others) == {
            "held": 8,
            "refused": [
                "the secretd daemon is serving 40 connections, its limit: try again later, or "
                "raise [daemon] max_connections in its config"
            ],
        }
        # root is served although nobody holds its 32 and OTHER the last 8 of 40 slots
        listed = client(world, "secret", "ls")
        assert listed.returncode == 0, listed.stderr
        ran = client(world, "run", "--secret", "api_key", "--", "cat", "/run/secrets/api_key")
        assert (ran.returncode, ran.stdout) == (0, CANARY), ran.stderr
        assert time.monotonic() - connected < 10  # before read_timeout freed any slot
        timed_out = {"dropped": ["timed out waiting for a complete frame"]}
        assert ask(theirs) == timed_out  # read_timeout: 10 s without a request
        assert ask(others) == timed_out
    finally:
        for proc in (theirs, others):
            if proc is None:
                continue
            proc.kill()
            proc.communicate()
    assert limited.idle_fds() == baseline
    as_nobody = client(world, "run", "--secret", "api_key", "--", "true", user=NOBODY)
    assert as_nobody.returncode == 0, as_nobody.stderr


BIG = 500 * 1000  # bytes: under the 500 KiB limit of one secret


def status_kib(pid: int, field: str) -> int:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return int(next(line for line in lines if line.startswith(field + ":")).split()[1])


@pytest.fixture
def capped(world: World) -> Iterator[Daemon]:
    """A daemon binding ``big`` (500 KB) for nobody, with 20 MB per user."""
    (world.root / "big.bin").write_bytes(os.urandom(BIG))
    (world.root / "big.bin").chmod(0o600)
    limits_config(world, "max_bytes_per_user = 20000000\n")
    text = world.config.read_text().replace('secrets = ["api_*"]', 'secrets = ["api_*", "big"]')
    world.config.write_text(text + '\n[secrets.big]\nsource = "file:big.bin"\n')
    started = Daemon(world)
    started.start()
    yield started
    if started.proc is not None and started.proc.poll() is None:
        assert started.stop() == 0, started.logs()


def big(count: int) -> list[str]:
    return [arg for n in range(count) for arg in ("--secret", f"source=big,target=b{n}")]


def test_runs_are_capped_per_run_and_per_user_and_memory_comes_back(
    world: World, capped: Daemon
) -> None:
    warm = client(world, "run", *big(30), "--", "true", user=NOBODY)
    assert warm.returncode == 0, warm.stderr
    baseline = {f: status_kib(capped.pid, f) for f in ("VmRSS", "VmLck")}

    many = client(world, "run", *big(1000), "--", "true", user=NOBODY)
    assert (many.returncode, many.stderr) == (
        2,
        "secretd: this run asks for 1000 secrets; the daemon allows 256 per run: raise "
        "[daemon] max_secrets_per_run in the daemon's config\n",
    )
    heavy = client(world, "run", *big(40), "--", "true", user=NOBODY)
    assert (heavy.returncode, heavy.stderr) == (
        2,
        "secretd: the secrets of this run come to 20000000 bytes; the daemon allows 16777216 "
        "per run: raise [daemon] max_bytes_per_run in the daemon's config\n",
    )

    ready = world.root / "marks" / "ready"
    ready.parent.mkdir()
    ready.parent.chmod(0o777)
    first = subprocess.Popen(
        [*setpriv(NOBODY), sys.executable, "-m", "secretd", "run", *big(30), "--",
         "sh", "-c", f"touch {ready}; exec sleep 60"],
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "SECRETD_HOST": world.host},
        cwd=world.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for(ready.exists, "the first run to start")
        second = client(world, "run", *big(30), "--", "true", user=NOBODY)
        assert (second.returncode, second.stderr) == (
            125,
            "secretd: uid 65534's running commands hold 15000000 bytes of secrets; this run's "
            "15000000 more would pass the daemon's 20000000 per user: wait for a run to end, or "
            "raise [daemon] max_bytes_per_user in the daemon's config\n",
        )
        assert client(world, "run", *big(30), "--", "true").returncode == 0  # root: its own
    finally:
        first.kill()
        first.communicate()
    wait_for(lambda: client(world, "ps", "-q").stdout == "", "the first run to end")
    for _ in range(5):  # the same 500 KB, 30 times a run: read once, given back after
        ran = client(world, "run", *big(30), "--", "true")
        assert ran.returncode == 0, ran.stderr
    after = {f: status_kib(capped.pid, f) for f in ("VmRSS", "VmLck")}
    for field, kib in baseline.items():
        assert after[field] <= kib * 1.1, (field, baseline, after)


def test_running_out_of_descriptors_does_not_stop_the_daemon(world: World, daemon: Daemon) -> None:
    """Root is never refused, so root's connections can exhaust RLIMIT_NOFILE: accept()
    fails with EMFILE until the silent ones time out, and the daemon serves on."""
    subprocess.run(["prlimit", f"--pid={daemon.pid}", "--nofile=48:48"], check=True)
    socks = []
    for _ in range(80):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(str(world.socket))
        socks.append(sock)
    wait_for(
        lambda: any("cannot accept a connection" in str(e["msg"]) for e in daemon.events()),
        "the daemon to run out of descriptors",
    )
    for sock in socks:
        sock.close()
    wait_for(lambda: ping(world.socket) is not None, "the daemon to answer again", timeout=20)
    assert daemon.proc is not None and daemon.proc.poll() is None
