"""Rotation's batching, with an in-process provider (a unit test: the end-to-end runs are
in test_sandbox.py): a rotation written in two steps is one batch, one action."""

from __future__ import annotations

from typing import Any

from secretd.errors import ProviderError
from secretd.rotation import Rotation
from secretd.spec import Secret, SecretRef


class Provider:
    def __init__(self, values: dict[str, bytes]) -> None:
        self.values = values
        self.versions = dict.fromkeys(values, 1)
        self.down = False

    def write(self, name: str, value: bytes) -> None:
        self.values[name], self.versions[name] = value, self.versions[name] + 1

    def version(self, ref: SecretRef) -> str:
        if self.down:
            raise ProviderError(f"provider down for {ref.name}")
        return str(self.versions[ref.name])

    def get(self, ref: SecretRef) -> Secret:
        return Secret(ref.name, self.version(ref), self.values[ref.name])


class Broker:
    def __init__(self, provider: Provider) -> None:
        self._provider = provider

    def provider(self, scheme: str) -> Provider:
        return self._provider

    def version(self, ref: SecretRef) -> str:
        return self._provider.version(ref)


def rotation(provider: Provider, pause: Any = lambda seconds: None) -> tuple[Rotation, list[Any]]:
    refs = [SecretRef(name, f"local:{name}", name, refresh=1.0) for name in provider.values]
    secrets = [provider.get(ref) for ref in refs]
    now = [0.0]
    watched = Rotation(Broker(provider), refs, secrets, clock=lambda: now[0], pause=pause)  # type: ignore[arg-type]
    return watched, now


def test_a_second_write_during_the_settle_time_joins_the_batch() -> None:
    provider = Provider({"cert": b"c1", "key": b"k1"})
    watched, now = rotation(provider, pause=lambda s: provider.write("key", b"k2"))
    provider.write("cert", b"c2")
    now[0] = 1.0
    assert watched.poll() == [0, 1]
    assert [s.value for s in watched.secrets] == [b"c2", b"k2"]
    now[0] = 2.0
    assert watched.poll() == []  # nothing left for a second action


def test_a_new_version_with_the_same_content_is_no_change() -> None:
    provider = Provider({"api": b"v"})
    watched, now = rotation(provider)
    provider.write("api", b"v")
    now[0] = 1.0
    assert watched.poll() == []
    assert watched.secrets[0].version == "2"


def test_failures_back_off_are_stale_and_recover() -> None:
    provider = Provider({"api": b"v1"})
    watched, now = rotation(provider)
    provider.down = True
    due = []
    for _ in range(6):
        now[0] = watched.due() or 0.0
        due.append(now[0])
        assert watched.poll() == []
    gaps = [b - a for a, b in zip(due, due[1:], strict=False)]
    assert gaps == sorted(gaps) and gaps[-1] <= 60.0  # doubling, capped
    assert set(watched.stale()) == {"api"}
    provider.down = False
    provider.write("api", b"v2")
    now[0] = watched.due() or 0.0
    assert watched.poll() == [0]
    assert watched.stale() == {}


def test_a_request_checks_a_secret_without_an_interval() -> None:
    provider = Provider({"api": b"v1"})
    refs = [SecretRef("api", "local:api", "api")]
    watched = Rotation(Broker(provider), refs, [provider.get(refs[0])])  # type: ignore[arg-type]
    assert watched.due() is None
    provider.write("api", b"v2")
    assert watched.poll() == []
    assert watched.request({"nope"}) is False
    assert watched.request({"api"}) is True
    assert watched.poll() == [0]


def test_a_requested_change_is_applied_without_settling() -> None:
    provider = Provider({"api": b"v1"})
    pauses: list[float] = []
    watched, now = rotation(provider, pause=pauses.append)
    provider.write("api", b"v2")
    assert watched.request({"api"})
    assert watched.poll() == [0]
    assert pauses == []  # secretd secret rotate: the rotation is already whole
