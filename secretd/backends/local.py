"""``local:NAME[?version=N]`` and bare names: secrets from the encrypted local store, and
configs (``--config local:NAME``, immutable, no versions) from its configs table."""

from __future__ import annotations

from ..config import Config
from ..errors import UsageError
from ..refs import split_locator
from ..spec import Secret, SecretRef
from ..store import LocalStore
from . import BaseProvider


def _locate(ref: SecretRef) -> tuple[str, int | None]:
    """The store name and the pinned version (``None``: the latest) a reference asks for."""
    loc = split_locator(ref.locator)
    unknown = set(loc.query) - {"version"}
    if loc.fragment or unknown:
        part = f"#{loc.fragment}" if loc.fragment else f"?{sorted(unknown)[0]}="
        raise UsageError(
            f"secret {ref.name!r}: {ref.source!r} has {part!r}, which the local store lacks",
            "write local:NAME or local:NAME?version=N",
        )
    if "version" not in loc.query:
        return loc.path, None
    text = loc.query["version"]
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise UsageError(
            f"secret {ref.name!r}: invalid version {text!r} in {ref.source!r}",
            "versions are whole numbers from 1",
        )
    return loc.path, int(text)


class LocalProvider(BaseProvider):
    """Reads the store that ``secretd secret create`` writes.

    Args:
        store: the store to read (tests and the daemon inject their own).
    """

    scheme = "local"

    def __init__(self, store: LocalStore) -> None:
        self.store = store

    @classmethod
    def from_config(cls, config: Config) -> LocalProvider:
        return cls(LocalStore.from_config(config))

    def get(self, ref: SecretRef) -> Secret:
        name, version = _locate(ref)
        if ref.kind == "config":
            _unversioned(ref, version)
            return Secret(name=ref.name, version="1", value=self.store.read_config(name))
        number, value = self.store.read(name, version)
        return Secret(name=ref.name, version=str(number), value=value)

    def version(self, ref: SecretRef) -> str:
        """The version number from the metadata: no key, no decryption."""
        name, version = _locate(ref)
        if ref.kind == "config":
            _unversioned(ref, version)
            self.store.inspect_config(name)
            return "1"
        return str(version if version is not None else self.store.current_version(name))


def _unversioned(ref: SecretRef, version: int | None) -> None:
    if version is not None:
        raise UsageError(
            f"config {ref.name!r}: {ref.source!r} asks for a version; configs have none",
            "write local:NAME",
        )
