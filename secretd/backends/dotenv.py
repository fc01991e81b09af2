"""``dotenv:PATH#KEY``: one value of a ``.env`` file, read with python-dotenv's rules.

``NAME=dotenv:PATH#*`` (or ``#APP_*``) is every matching key, as one tree secret: a file
per key under ``NAME/``, replaced as a set. A key that cannot be a file name (``a/b``,
``..x``) is refused rather than renamed.

``${NAME}`` and ``${NAME:-default}`` expand from the keys defined above them in the same
file, never from the environment: the file may be the caller's, and secretd's environment
holds its own credentials (``VAULT_TOKEN``, ``SECRETD_PASSPHRASE``), which python-dotenv's
own expansion would copy into the secret.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path

from dotenv.parser import parse_stream
from dotenv.variables import parse_variables

from .. import safeopen
from ..config import Config
from ..errors import SecretNotFound, UsageError
from ..refs import check_target, glob_matches, split_locator
from ..spec import Secret, SecretRef
from . import BaseProvider
from ._common import content_version, tree_content_version
from .file import read_file

HINT = "use KEY=VALUE lines (python-dotenv's rules: quote a value with spaces or '#')"


def parse_dotenv(path: Path, name: str) -> dict[str, str]:
    """All key/value pairs of a .env file; a malformed line is an error naming its number.

    Raises:
        UsageError: the file is not UTF-8, or has a line python-dotenv cannot parse (the
            line is not echoed).
    """
    text = safeopen.decode(read_file(path, name), str(path))
    pairs = []
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            raise UsageError(f"cannot parse {path} at line {binding.original.line}", HINT)
        if binding.key is not None:
            pairs.append((binding.key, binding.value))
    return expand(pairs)


def expand(pairs: Iterable[tuple[str, str | None]]) -> dict[str, str]:
    """python-dotenv's ``${NAME:-default}`` expansion over the file's own earlier keys only
    (an unknown name gives its default, or nothing); ``KEY`` lines without ``=`` are left out."""
    values: dict[str, str | None] = {}
    for key, value in pairs:
        if value is not None:
            value = "".join(atom.resolve(values) for atom in parse_variables(value))
        values[key] = value
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
        if "*" in loc.fragment:
            return _tree(ref, path, values, loc.fragment)
        if loc.fragment not in values:
            raise SecretNotFound(f"secret {ref.name!r}: no key {loc.fragment!r} in {path}")
        value = values[loc.fragment].encode()
        return Secret(name=ref.name, version=content_version(value), value=value)


def _tree(ref: SecretRef, path: Path, values: dict[str, str], pattern: str) -> Secret:
    """The keys ``pattern`` matches, one file each.

    Raises:
        SecretNotFound: no key matches.
        UsageError: a matching key cannot be a file name.
    """
    tree = {key: values[key].encode() for key in glob_matches(pattern, values)}
    if not tree:
        raise SecretNotFound(f"secret {ref.name!r}: no key matches {pattern!r} in {path}")
    for key in tree:
        if "/" in key or not _file_name(key):
            raise UsageError(
                f"secret {ref.name!r}: key {key!r} in {path} cannot be a file name",
                "rename the key, or name the keys one by one: dotenv:PATH#KEY",
            )
    return Secret(name=ref.name, version=tree_content_version(tree), value=b"", tree=tree)


def _file_name(key: str) -> bool:
    try:
        check_target(key, key)
    except UsageError:
        return False
    return key.isprintable()
