"""``file:PATH``: a secret already on disk (a mounted volume, a CI file variable)."""

from __future__ import annotations

from pathlib import Path

from .. import safeopen
from ..config import Config
from ..errors import AccessDenied, ProviderError, SecretNotFound
from ..spec import Secret, SecretRef
from . import BaseProvider
from ._common import content_version


def read_file(path: Path, name: str) -> bytes:
    """Read a file a reference names (a regular file, smaller than 500 KiB; in the daemon,
    by ``safeopen``'s rules for its caller), with errors that say which secret wanted it."""
    try:
        return safeopen.read_file(path)
    except FileNotFoundError:
        raise SecretNotFound(f"secret {name!r}: file {str(path)!r} does not exist") from None
    except PermissionError as exc:
        raise AccessDenied(f"secret {name!r}: cannot read {str(path)!r}: {exc.strerror}") from None
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
