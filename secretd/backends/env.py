"""``env:VAR``: a secret handed over in the process environment, as CI systems do."""

from __future__ import annotations

import os

from ..config import Config
from ..errors import SecretNotFound
from ..spec import Secret, SecretRef
from . import BaseProvider
from ._common import content_version


class EnvProvider(BaseProvider):
    scheme = "env"

    @classmethod
    def from_config(cls, config: Config) -> EnvProvider:
        return cls()

    def get(self, ref: SecretRef) -> Secret:
        value = os.environb.get(ref.locator.encode())
        if value is None:
            raise SecretNotFound(
                f"secret {ref.name!r}: environment variable {ref.locator!r} is not set",
                f"export {ref.locator} before running secretd",
            )
        return Secret(name=ref.name, version=content_version(value), value=value)
