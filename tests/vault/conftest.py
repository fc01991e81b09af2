"""Fixtures for the Vault provider's tests: a real OpenBao dev server for the session
(each test writes under its own unique path), servers of a test's own for the tests that
stop, seal or put TLS on one, PostgreSQL behind the database engine, and a provider
factory. The servers themselves are in servers.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from secretd.backends.vault import VaultProvider
from secretd.backends.vault_settings import VaultSettings
from tests.vault.servers import (
    ROOT_TOKEN,
    BaoServer,
    Postgres,
    ProviderFactory,
    configure_database,
    pg_bin,
    prepare,
    running_postgres,
    start_bao,
    token_review_api,
)


@pytest.fixture(scope="session")
def openbao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BaoServer]:
    server = start_bao(tmp_path_factory.mktemp("openbao"))
    try:
        prepare(server)
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_openbao(tmp_path: Path) -> Iterator[BaoServer]:
    """A server of this test's own, for tests that stop or seal it."""
    server = start_bao(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def tls_openbao(tmp_path: Path) -> Iterator[BaoServer]:
    """A server with TLS, its CA certificate at ``.ca``."""
    server = start_bao(tmp_path, tls=True)
    yield server
    server.stop()


@pytest.fixture
def unique() -> str:
    """A path element no other test uses."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def provider(openbao: BaoServer) -> ProviderFactory:
    """Build a provider from ``[providers.vault]``-style settings: the session server and
    its root token unless told otherwise."""

    def make(server: BaoServer | None = None, **settings: Any) -> VaultProvider:
        settings.setdefault("address", (server or openbao).address)
        if not {"auth", "token", "token_file", "role_id", "role"} & set(settings):
            settings["token"] = ROOT_TOKEN
        return VaultProvider(VaultSettings.load(settings, {}))

    return make


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    initdb, pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.fail("PostgreSQL is missing: run make setup (tools/setup-host.sh installs it)")
    with running_postgres(initdb, pg_ctl) as server:
        yield server


@pytest.fixture(scope="session")
def database(openbao: BaoServer, postgres: Postgres) -> str:
    """``database/creds/app``: 4 s PostgreSQL credentials, renewable up to 5 s."""
    return configure_database(openbao, postgres)


@pytest.fixture
def token_review() -> Iterator[tuple[str, set[str]]]:
    with token_review_api() as api:
        yield api
