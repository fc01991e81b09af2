"""A run's own providers (``Broker.for_run``, the daemon's way to read a caller's ``env:``
secrets from the environment its client sent): used for their scheme only, for that run
only; their reads are never joined with another run's nor cached for one.

Gated providers stand in for the caller's environments, so that the reads surely overlap;
the daemon itself is tests/fastpath/test_env_forwarded.py.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from secretd.backends import BaseProvider
from secretd.backends.env import EnvProvider
from secretd.broker import Broker
from secretd.config import Config
from secretd.errors import SecretNotFound, UsageError
from secretd.refs import parse_refs
from secretd.spec import Secret, SecretRef


class Gated(BaseProvider):
    """``env:`` as one caller's environment holds it; each read takes 0.3 s."""

    scheme = "env"

    def __init__(self, value: bytes) -> None:
        self.value = value
        self.reads = 0

    def get(self, ref: SecretRef) -> Secret:
        self.reads += 1
        threading.Event().wait(0.3)
        return Secret(ref.name, "1", self.value)


def shared_broker(tmp_path: Path, cache_ttl: float = 0.0) -> tuple[Broker, Gated]:
    own = Gated(b"the-daemons-own")
    config = Config(state_dir=tmp_path, runtime_dir=tmp_path, cache_ttl=cache_ttl)
    return Broker(config, lambda scheme, config: own), own


def test_overlapping_runs_each_read_their_own_environment(tmp_path: Path) -> None:
    broker, daemons = shared_broker(tmp_path)
    callers = [Gated(f"caller-{n}".encode()) for n in range(4)]
    refs = parse_refs(["tok=env:TOKEN"])
    with ThreadPoolExecutor(len(callers)) as pool:
        got = list(pool.map(lambda p: broker.for_run({"env": p}).resolve(refs)[0], callers))
    assert [s.value for s in got] == [p.value for p in callers]
    assert [p.reads for p in callers] == [1] * len(callers) and daemons.reads == 0


@pytest.mark.parametrize("cache_ttl", [0.0, 60.0])
def test_a_runs_own_read_is_not_kept_for_another(tmp_path: Path, cache_ttl: float) -> None:
    broker, daemons = shared_broker(tmp_path, cache_ttl)
    refs = parse_refs(["tok=env:TOKEN"])
    first = broker.for_run({"env": Gated(b"first")}).resolve(refs)[0]
    second = broker.for_run({"env": Gated(b"second")}).resolve(refs)[0]
    assert (first.value, second.value) == (b"first", b"second")
    assert broker.resolve(refs)[0].value == b"the-daemons-own" and daemons.reads == 1


def test_an_env_provider_reads_only_the_environment_it_was_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FOR_RUN_DAEMON_ONLY", "daemon-value")
    given = EnvProvider({"FOR_RUN_A": "a-value", "FOR_RUN_B": "b-value"})
    (one, tree) = parse_refs(["one=env:FOR_RUN_A", "tree=env:FOR_RUN_*"])
    assert given.get(one).value == b"a-value"
    assert given.get(tree).tree == {"FOR_RUN_A": b"a-value", "FOR_RUN_B": b"b-value"}
    with pytest.raises(SecretNotFound, match="'FOR_RUN_DAEMON_ONLY' is not set"):
        given.get(parse_refs(["x=env:FOR_RUN_DAEMON_ONLY"])[0])
    assert EnvProvider().get(parse_refs(["x=env:FOR_RUN_DAEMON_ONLY"])[0]).value == b"daemon-value"


def test_a_callers_env_provider_reads_no_file(tmp_path: Path) -> None:
    """``env:VAR?file`` would have the daemon read the file with its own rights."""
    secret = tmp_path / "root-only"
    secret.write_text("not-for-callers")
    (ref,) = parse_refs(["x=env:FOR_RUN_PATH?file"])
    assert EnvProvider({"FOR_RUN_PATH": str(secret)}).get(ref).value == b"not-for-callers"
    with pytest.raises(UsageError, match="a file the daemon does not read for you"):
        EnvProvider({"FOR_RUN_PATH": str(secret)}, files=False).get(ref)
