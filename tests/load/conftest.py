"""Fixtures of the load suite: the daemon's world (tests/daemon) and an OpenBao dev server
of the module's own, with the PKI role whose certificates the runs hold."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.daemon.conftest import daemon, world  # noqa: F401 - the fixtures, shared
from tests.vault.servers import BaoServer, prepare, start_bao


@pytest.fixture(scope="module")
def openbao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BaoServer]:
    server = start_bao(tmp_path_factory.mktemp("openbao"))
    try:
        prepare(server)
        yield server
    finally:
        server.stop()
