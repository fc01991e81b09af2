"""Real AWS-speaking servers for the aws/ssm tests.

* ``moto_server``: moto's standalone server (``moto[server]``), one per session on a free
  loopback port; ``moto`` wipes its state before each test and sets dummy credentials.
* ``fake_aws``: a tiny HTTP server that answers AWS JSON-protocol calls with canned
  errors moto cannot produce (access denied, KMS failures, throttling, 5xx).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from secretd.config import Config
from tests.aws.servers import ACCESS_KEY, SECRET_KEY, FakeAws, Moto, running_moto
from tests.support.waiting import free_port


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    with running_moto(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture
def own_moto(tmp_path: Path, aws_env: None) -> Iterator[Moto]:
    """A moto_server of this test's own, for tests that stop it."""
    with running_moto(tmp_path) as server:
        yield server


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Dummy credentials in the environment; no shared config files, no instance metadata."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def moto(moto_server: Moto, aws_env: None) -> Moto:
    moto_server.reset()
    return moto_server


@pytest.fixture
def dead_url() -> str:
    """A loopback URL where nothing listens."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def config(tmp_path: Path) -> Callable[..., Config]:
    """``config(aws={...}, ssm={...})``: a Config holding those ``[providers.*]`` tables."""

    def make(**providers: dict[str, Any]) -> Config:
        return Config(
            state_dir=tmp_path / "state", runtime_dir=tmp_path / "run", providers=providers
        )

    return make


@pytest.fixture
def fake_aws(aws_env: None) -> Iterator[FakeAws]:
    fake = FakeAws()
    server = ThreadingHTTPServer(("127.0.0.1", 0), fake.handler())
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
