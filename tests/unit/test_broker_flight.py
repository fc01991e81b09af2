"""Single-flight in the broker: concurrent resolves of one source share one read, except
when it is leased, when it fails, or when they read for different callers.

A gated provider stands in for a real one, so that the reads surely overlap; the real
thing (200 daemon runs against OpenBao's audit log) is tests/load/test_single_flight.py.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from secretd import safeopen
from secretd.backends import BaseProvider
from secretd.broker import Broker
from secretd.config import Config
from secretd.errors import ProviderError
from secretd.refs import parse_refs
from secretd.spec import Secret, SecretRef

CLIENTS = 8


class Gated(BaseProvider):
    """Each read takes 0.5 s, so that reads started together overlap."""

    scheme = "gated"

    def __init__(self, leased: bool = False, failing: int = 0) -> None:
        self.leased = leased
        self.failing = failing  # how many first reads fail
        self.reads = 0
        self.lock = threading.Lock()

    def get(self, ref: SecretRef) -> Secret:
        with self.lock:
            self.reads += 1
            number = self.reads
        threading.Event().wait(0.5)
        if number <= self.failing:
            raise ProviderError("upstream is down")
        lease = f"lease/{number}" if self.leased else None
        return Secret(ref.name, "1", b"value", lease_id=lease, lease_duration=60)


def together(
    tmp_path: Path, provider: Gated, callers: list[int | None]
) -> list[Secret | Exception]:
    broker = Broker(Config(state_dir=tmp_path, runtime_dir=tmp_path), lambda s, c: provider)

    def one(uid: int | None) -> Secret | Exception:
        try:
            if uid is None:
                return broker.resolve(parse_refs(["app=gated:shared"]))[0]
            with safeopen.reading_for(uid, [uid], trusted=False):
                return broker.resolve(parse_refs(["app=gated:shared"]))[0]
        except ProviderError as exc:
            return exc

    with ThreadPoolExecutor(len(callers)) as pool:
        return list(pool.map(one, callers))


def test_concurrent_reads_of_one_source_are_one_read(tmp_path: Path) -> None:
    provider = Gated()
    results = together(tmp_path, provider, [None] * CLIENTS)
    assert provider.reads == 1
    assert all(isinstance(r, Secret) and r.value == b"value" for r in results)


def test_a_leased_source_is_read_once_per_resolve(tmp_path: Path) -> None:
    provider = Gated(leased=True)
    results = together(tmp_path, provider, [None] * CLIENTS)
    assert provider.reads == CLIENTS
    leases = {r.lease_id for r in results if isinstance(r, Secret)}
    assert len(leases) == CLIENTS


@pytest.mark.parametrize("failing", [1, CLIENTS])
def test_a_failed_read_is_not_shared_each_reads_again(tmp_path: Path, failing: int) -> None:
    provider = Gated(failing=failing)
    results = together(tmp_path, provider, [None] * CLIENTS)
    errors = [r for r in results if isinstance(r, Exception)]
    assert len(errors) == min(failing, CLIENTS)  # the leader's, and any failed retry
    assert provider.reads == CLIENTS  # the leader's, then each waiting one's own


def test_reads_for_different_callers_are_not_shared(tmp_path: Path) -> None:
    provider = Gated()
    together(tmp_path, provider, [1000, 1000, 1001, 1001])
    assert provider.reads == 2


def test_a_read_after_forget_does_not_join_one_in_progress(tmp_path: Path) -> None:
    provider = Gated()
    broker = Broker(Config(state_dir=tmp_path, runtime_dir=tmp_path), lambda s, c: provider)
    refs = parse_refs(["app=gated:shared"])
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(broker.resolve, refs)
        threading.Event().wait(0.2)  # the first read is in progress
        broker.forget()  # as 'secretd secret rotate' does
        second = pool.submit(broker.resolve, refs)
        assert first.result()[0].value == second.result()[0].value == b"value"
    assert provider.reads == 2
