"""Fixtures of the load suite: the daemon's world (tests/daemon) and an OpenBao dev server
of the module's own, with the PKI role whose certificates the runs hold."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.daemon.conftest import Daemon, World, daemon, world  # noqa: F401 - the fixtures, shared
from tests.vault.servers import ROOT_TOKEN, BaoServer, prepare, start_bao


@pytest.fixture(scope="module")
def openbao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BaoServer]:
    server = start_bao(tmp_path_factory.mktemp("openbao"))
    try:
        prepare(server)
        yield server
    finally:
        server.stop()


def vault_backed(home: World, address: str, secrets: str) -> Iterator[Daemon]:
    """The daemon of ``home`` with OpenBao at ``address`` as its Vault and ``secrets`` (TOML
    ``[secrets.NAME]`` tables) appended to its config; stopped cleanly afterwards."""
    with home.config.open("a") as config:
        config.write(f'\n[providers.vault]\naddress = "{address}"\ntoken = "{ROOT_TOKEN}"\n\n')
        config.write(secrets)
    started = Daemon(home)
    started.start()
    yield started
    assert started.stop() == 0, started.logs()[-3000:]
