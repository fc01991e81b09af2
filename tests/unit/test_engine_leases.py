"""The engine's lease bookkeeping: given back after a run, left alone for a detached one.

The real providers and runtimes are exercised end to end in tests/vault and tests/oci;
here a recording provider and a runtime that starts nothing isolate the engine's choice.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from secretd import engine
from secretd.backends import BaseProvider
from secretd.broker import Broker
from secretd.config import Config
from secretd.refs import parse_refs
from secretd.spec import RunSpec, Secret, SecretFile, SecretMount, SecretRef


class LeasingProvider(BaseProvider):
    scheme = "lease"

    def __init__(self) -> None:
        self.revoked: list[str] = []

    def get(self, ref: SecretRef) -> Secret:
        return Secret(ref.name, "1", b"v", lease_id=f"lease/{ref.name}", lease_duration=3600)

    def revoke(self, secret: Secret) -> None:
        self.revoked.append(secret.lease_id or "")


class Finished:
    id = "finished"

    def wait(self, timeout: float | None = None) -> int:
        return 0

    def update(self, files: tuple[SecretFile, ...]) -> None:
        raise AssertionError("nothing to rotate")

    def signal(self, signum: object) -> None:
        raise AssertionError("nothing to signal")

    def remove(self) -> None:
        return None


class NoRuntime:
    name = "none"

    def launch(self, spec: RunSpec, mount: SecretMount, stdio: Sequence[int]) -> Finished:
        return Finished()


@pytest.mark.parametrize(("detach", "revoked"), [(False, ["lease/db"]), (True, [])])
def test_leases_are_given_back_unless_the_container_is_detached(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, detach: bool, revoked: list[str]
) -> None:
    provider = LeasingProvider()
    config = Config(state_dir=tmp_path, runtime_dir=tmp_path)
    monkeypatch.setattr(engine, "load_runtime", lambda name, config: NoRuntime())
    spec = RunSpec(
        command=("app",), image="img", runtime="oci", detach=detach,
        secrets=parse_refs(["db=lease:x"]),
    )  # fmt: skip
    broker = Broker(config, loader=lambda scheme, config: provider)
    assert engine.Engine(config, broker).run(spec) == 0
    assert provider.revoked == revoked

