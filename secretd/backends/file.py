"""``file:PATH``: a secret already on disk (a mounted volume, a CI file variable)."""

from __future__ import annotations

from pathlib import Path

from ..config import Config
from ..errors import ProviderError, SecretNotFound
from ..spec import Secret, SecretRef
from . import BaseProvider
from ._common import content_version


def read_file(path: Path, name: str) -> bytes:
    """Read a file a reference names, with errors that say which secret wanted it."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise SecretNotFound(f"secret {name!r}: file {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise ProviderError(f"secret {name!r}: {str(path)!r} is a directory") from None
    except OSError as exc:
        raise ProviderError(f"secret {name!r}: cannot read {str(path)!r}: {exc.strerror}") from None


class FileProvider(BaseProvider):
    scheme = "file"

    @classmethod
    def from_config(cls, config: Config) -> FileProvider:
        return cls()

    def get(self, ref: SecretRef) -> Secret:
        value = read_file(Path(ref.locator), ref.name)
        return Secret(name=ref.name, version=content_version(value), value=value)
