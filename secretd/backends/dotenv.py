"""``dotenv:PATH#KEY``: one value of a ``.env`` file, read with python-dotenv's rules."""

from __future__ import annotations

import io
from pathlib import Path

from dotenv import dotenv_values
from dotenv.parser import parse_stream

from ..config import Config
from ..errors import SecretNotFound, UsageError
from ..refs import split_locator
from ..spec import Secret, SecretRef
from . import BaseProvider
from ._common import content_version
from .file import read_file


def parse_dotenv(path: Path, name: str) -> dict[str, str]:
    """All key/value pairs of a .env file; a malformed line is an error naming its number.

    Raises:
        UsageError: the file has a line python-dotenv cannot parse (the line is not echoed).
    """
    try:
        text = read_file(path, name).decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not UTF-8 text", "save the .env file as UTF-8") from None
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            raise UsageError(
                f"cannot parse {path} at line {binding.original.line}",
                "use KEY=VALUE lines (quote values with spaces or '#')",
            )
    values = dotenv_values(stream=io.StringIO(text), interpolate=True)
    return {key: value for key, value in values.items() if value is not None}


class DotenvProvider(BaseProvider):
    scheme = "dotenv"

    @classmethod
    def from_config(cls, config: Config) -> DotenvProvider:
        return cls()

    def get(self, ref: SecretRef) -> Secret:
        loc = split_locator(ref.locator)
        if not loc.fragment:
            raise UsageError(
                f"secret {ref.name!r}: {ref.source!r} names no key", "write dotenv:PATH#KEY"
            )
        path = Path(loc.path)
        values = parse_dotenv(path, ref.name)
        if loc.fragment not in values:
            raise SecretNotFound(f"secret {ref.name!r}: no key {loc.fragment!r} in {path}")
        value = values[loc.fragment].encode()
        return Secret(name=ref.name, version=content_version(value), value=value)
