"""The provider contract (tests/support/provider_contract.py) for ``vault:`` against the
session's OpenBao: KV v2 and KV v1 secrets, and PKI certificates for the leases."""

from __future__ import annotations

import uuid

import pytest

from secretd.backends.vault import VaultProvider
from secretd.errors import SecretNotFound
from secretd.refs import parse_ref
from tests.support.provider_contract import Backend, ProviderContract
from tests.vault.servers import BaoServer, ProviderFactory, lease_exists

pytestmark = pytest.mark.vault


class VaultBackend(Backend):
    """Secrets written with the root token, one ``value`` field each."""

    def __init__(self, server: BaoServer, mount: str) -> None:
        self.server = server
        self.mount = mount

    def _write(self, path: str, value: bytes) -> None:
        data = {"value": value.decode()}
        self.server.client().write_data(
            path, data={"data": data} if self.mount == "secret" else data
        )

    def _path(self, source: str) -> str:
        path = source.split("vault:", 1)[1].split("#", 1)[0]
        return path.replace("secret/", "secret/data/", 1) if self.mount == "secret" else path

    def put(self, name: str, value: bytes) -> str:
        path = f"{self.mount}/contract-{uuid.uuid4().hex[:10]}"
        self._write(path.replace("secret/", "secret/data/", 1), value)
        return f"{name}=vault:{path}#value"

    def change(self, source: str, value: bytes) -> None:
        self._write(self._path(source), value)

    def absent(self, name: str) -> str:
        return f"{name}=vault:{self.mount}/absent-{uuid.uuid4().hex[:10]}#value"

    def misread(self, source: str) -> str:
        return source.replace("#value", "#nofield")

    def leased(self, name: str) -> str:
        return f"{name}=vault:pki/issue/web?common_name=a.example.com&ttl=1h#private_key"

    def lease_alive(self, lease_id: str) -> bool:
        return lease_exists(self.server, lease_id)


class TestVaultKV2(ProviderContract):
    mount = "secret"

    @pytest.fixture
    def backend(self, openbao: BaoServer) -> VaultBackend:
        return VaultBackend(openbao, self.mount)

    @pytest.fixture
    def provider(self, provider: ProviderFactory) -> VaultProvider:
        return provider()

    def test_errors_name_the_request(self, provider: VaultProvider, backend: VaultBackend) -> None:
        ref = parse_ref(backend.absent("gone"))
        with pytest.raises(SecretNotFound) as caught:
            provider.get(ref)
        path = ref.locator.split("#")[0].replace("secret/", "secret/data/", 1)
        assert caught.value.fields == {"provider": "vault", "method": "GET", "path": path}


class TestVaultKV1(TestVaultKV2):
    mount = "kv1"
