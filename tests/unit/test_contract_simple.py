"""The provider contract (tests/support/provider_contract.py) for the providers that need
no server: the local store in a temporary state directory, the environment, files and
dotenv files."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from secretd.backends.dotenv import DotenvProvider
from secretd.backends.env import EnvProvider
from secretd.backends.file import FileProvider
from secretd.backends.local import LocalProvider
from secretd.errors import StoreError
from secretd.refs import parse_ref
from secretd.store import LocalStore
from tests.support.provider_contract import Backend, ProviderContract


class StoreBackend(Backend):
    def __init__(self, store: LocalStore) -> None:
        self.store = store

    def put(self, name: str, value: bytes) -> str:
        key = f"contract-{uuid.uuid4().hex[:8]}"
        self.store.create(key, value)
        return f"{name}=local:{key}"

    def change(self, source: str, value: bytes) -> None:
        self.store.rotate(parse_ref(source).locator, value)

    def absent(self, name: str) -> str:
        return f"{name}=local:absent-{uuid.uuid4().hex[:8]}"

    def misread(self, source: str) -> str:
        return f"{source}?version=99"


class TestLocal(ProviderContract):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> StoreBackend:
        return StoreBackend(LocalStore(tmp_path / "state/store.db", tmp_path / "state/store.key"))

    @pytest.fixture
    def provider(self, backend: StoreBackend) -> LocalProvider:
        return LocalProvider(backend.store)

    def test_version_opens_no_value(self, backend: StoreBackend, tmp_path: Path) -> None:
        """Cheap: the version comes from the metadata, so a store without its key still
        answers it (and only it)."""
        ref = parse_ref(backend.put("contract", b"v1"))
        keyless = LocalProvider(LocalStore(backend.store.path, tmp_path / "no.key"))
        assert keyless.version(ref) == "1"
        with pytest.raises(StoreError):
            keyless.get(ref)


class EnvBackend(Backend):
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.monkeypatch = monkeypatch

    def put(self, name: str, value: bytes) -> str:
        variable = f"CONTRACT_{uuid.uuid4().hex[:8].upper()}"
        self.monkeypatch.setenv(variable, value.decode())
        return f"{name}=env:{variable}"

    def change(self, source: str, value: bytes) -> None:
        self.monkeypatch.setenv(parse_ref(source).locator, value.decode())

    def absent(self, name: str) -> str:
        return f"{name}=env:CONTRACT_ABSENT_{uuid.uuid4().hex[:8].upper()}"


class TestEnv(ProviderContract):
    @pytest.fixture
    def backend(self, monkeypatch: pytest.MonkeyPatch) -> EnvBackend:
        return EnvBackend(monkeypatch)

    @pytest.fixture
    def provider(self) -> EnvProvider:
        return EnvProvider()


class FileBackend(Backend):
    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, name: str, value: bytes) -> str:
        path = self.root / uuid.uuid4().hex[:8]
        path.write_bytes(value)
        return f"{name}=file:{path}"

    def change(self, source: str, value: bytes) -> None:
        Path(parse_ref(source).locator).write_bytes(value)

    def absent(self, name: str) -> str:
        return f"{name}=file:{self.root}/absent"


class TestFile(ProviderContract):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> FileBackend:
        return FileBackend(tmp_path)

    @pytest.fixture
    def provider(self) -> FileProvider:
        return FileProvider()


class DotenvBackend(Backend):
    """One ``.env`` file; each secret a key in it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pairs: dict[str, bytes] = {"OTHER": b"other"}

    def _write(self) -> None:
        self.path.write_bytes(
            b"".join(b"%s='%s'\n" % (k.encode(), v) for k, v in self.pairs.items())
        )

    def put(self, name: str, value: bytes) -> str:
        key = f"KEY_{uuid.uuid4().hex[:8].upper()}"
        self.pairs[key] = value
        self._write()
        return f"{name}=dotenv:{self.path}#{key}"

    def change(self, source: str, value: bytes) -> None:
        self.pairs[source.rsplit("#", 1)[1]] = value
        self._write()

    def absent(self, name: str) -> str:
        return f"{name}=dotenv:{self.path}#ABSENT"

    def misread(self, source: str) -> str:
        return source.rsplit("#", 1)[0]  # no key named: a file holds several


class TestDotenv(ProviderContract):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> DotenvBackend:
        return DotenvBackend(tmp_path / ".env")

    @pytest.fixture
    def provider(self) -> DotenvProvider:
        return DotenvProvider()
