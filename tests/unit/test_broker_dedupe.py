"""The broker reads a secret asked for under several targets once, unless it is leased.

A recording provider stands in for a real one (the daemon's memory test in
tests/daemon/test_limits.py measures the effect end to end).
"""

from __future__ import annotations

from pathlib import Path

from secretd.backends import BaseProvider
from secretd.broker import Broker
from secretd.config import Config
from secretd.refs import parse_refs
from secretd.spec import Secret, SecretRef


class Counting(BaseProvider):
    scheme = "count"

    def __init__(self, leased: bool) -> None:
        self.leased = leased
        self.fetched: list[str] = []

    def get(self, ref: SecretRef) -> Secret:
        self.fetched.append(ref.source)
        lease = f"lease/{len(self.fetched)}" if self.leased else None
        return Secret(ref.name, "1", b"v" * 1000, lease_id=lease, lease_duration=60)


def resolve(tmp_path: Path, provider: Counting, texts: list[str]) -> list[Secret]:
    broker = Broker(Config(state_dir=tmp_path, runtime_dir=tmp_path), lambda s, c: provider)
    return broker.resolve(parse_refs(texts))


def test_one_source_under_many_targets_is_read_and_held_once(tmp_path: Path) -> None:
    provider = Counting(leased=False)
    texts = ["a=count:shared", "b=count:shared", "c=count:shared", "o=count:other"]
    secrets = resolve(tmp_path, provider, texts)
    assert provider.fetched == ["count:shared", "count:other"]
    assert [s.name for s in secrets] == ["a", "b", "c", "o"]
    assert secrets[0].value is secrets[1].value is secrets[2].value


def test_a_leased_source_is_issued_once_per_reference(tmp_path: Path) -> None:
    provider = Counting(leased=True)
    secrets = resolve(tmp_path, provider, ["a=count:shared", "b=count:shared"])
    assert provider.fetched == ["count:shared", "count:shared"]
    assert [s.lease_id for s in secrets] == ["lease/1", "lease/2"]
