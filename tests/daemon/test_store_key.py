"""The daemon's one store: a passphrase store's key is derived once per daemon (not per
request), and what the CLI writes to the store directly, even a new store in its place,
is what the daemon's next run reads."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from secretd import protocol

from .conftest import Daemon, World, call, client

pytestmark = pytest.mark.root

PASSPHRASE = "kept-key-passphrase-7f3a"
REQUESTS = 40
TOGETHER = 12
UNWRAPPED = "the store's data key is unwrapped"


def direct(world: World, *args: str, value: str | None = None) -> None:
    """``secretd ARGS`` on the store itself, no daemon."""
    done = subprocess.run(
        [sys.executable, "-m", "secretd", *args],
        env=world.env(), cwd=world.root, input=value, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


@pytest.fixture
def passphrase_daemon(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[Daemon]:
    monkeypatch.setenv("SECRETD_PASSPHRASE", PASSPHRASE)
    direct(world, "store", "init", "--passphrase")
    direct(world, "secret", "create", "app", "-", value="first-value")
    daemon = Daemon(world)
    daemon.start()
    yield daemon
    assert daemon.stop() == 0, daemon.logs()[-3000:]


def cat(world: World) -> str:
    ran = client(world, "run", "--secret", "app", "--", "cat", "/run/secrets/app")
    assert ran.returncode == 0, ran.stderr
    return str(ran.stdout)


def unwrapped(daemon: Daemon) -> int:
    """How many times the daemon has unwrapped the store's key (derived it from the
    passphrase), by its own debug log."""
    return sum(event.get("msg") == UNWRAPPED for event in daemon.events())


def test_a_passphrase_store_costs_the_daemon_one_key_derivation(
    world: World, passphrase_daemon: Daemon
) -> None:
    assert cat(world) == "first-value"
    assert unwrapped(passphrase_daemon) == 1
    for n in range(REQUESTS):
        value = protocol.encode_blob(f"value-{n}".encode())
        reply = call(
            world.socket, protocol.request("secret", action="rotate", name="app", value=value)
        )
        assert reply["ok"] is True, reply
    assert cat(world) == f"value-{REQUESTS - 1}"
    assert unwrapped(passphrase_daemon) == 1


def test_requests_arriving_together_at_a_new_daemon_derive_the_key_once(
    world: World, passphrase_daemon: Daemon
) -> None:
    rotate = protocol.request("secret", action="rotate", name="app", value="dG9nZXRoZXI=")
    with ThreadPoolExecutor(TOGETHER) as pool:
        replies = list(pool.map(lambda _: call(world.socket, rotate), range(TOGETHER)))
    assert all(reply["ok"] is True for reply in replies), replies
    assert unwrapped(passphrase_daemon) == 1


def test_the_daemon_reads_what_the_cli_wrote_even_to_a_new_store(
    world: World, passphrase_daemon: Daemon
) -> None:
    assert cat(world) == "first-value"
    direct(world, "secret", "rotate", "app", "-", value="rotated-by-cli")
    assert cat(world) == "rotated-by-cli"
    for name in ("store.db", "store.db-wal", "store.db-shm"):
        (world.state / name).unlink(missing_ok=True)
    direct(world, "store", "init", "--passphrase")  # a new data key
    direct(world, "secret", "create", "app", "-", value="in-a-new-store")
    assert cat(world) == "in-a-new-store"


def test_concurrent_requests_share_the_store_safely(
    world: World, passphrase_daemon: Daemon
) -> None:
    """32 clients asking about a stored secret while it is rotated through the daemon and
    by the CLI: every answer is right, and the next run reads the last value."""
    check = protocol.request("resolve-check", secrets=["app", "missing"])
    expected = [
        {"secret": "app", "allowed": True, "known": True},
        {"secret": "missing", "allowed": True, "known": False},
    ]

    def ask(_: int) -> list[object]:
        return [call(world.socket, check)["secrets"] for _ in range(30)]

    with ThreadPoolExecutor(32) as pool:
        answers = pool.map(ask, range(32))
        for n in range(10):
            value = protocol.encode_blob(f"during-{n}".encode())
            reply = call(
                world.socket, protocol.request("secret", action="rotate", name="app", value=value)
            )
            assert reply["ok"] is True, reply
        direct(world, "secret", "rotate", "app", "-", value="last-by-cli")
        assert all(answer == expected for batch in answers for answer in batch)
    assert cat(world) == "last-by-cli"
