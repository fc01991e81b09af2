"""``env:VAR``: a secret handed over in the process environment, as CI systems do.

* ``env:VAR?file``: VAR holds the path of a file that holds the value (GitLab's File-type
  variables, which CI runners write to a temporary file); the file is read by
  ``safeopen``'s rules, as ``file:`` is.
* ``NAME=env:APP_*``: every variable the pattern matches, as one tree secret (a file per
  variable under ``NAME/``). Without a name, ``refs.parse_refs`` expands the pattern into
  one reference per variable instead (docs/references.md).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..config import Config
from ..errors import SecretNotFound, UsageError
from ..refs import env_matches, split_locator
from ..spec import Secret, SecretRef
from . import BaseProvider
from ._common import content_version, tree_content_version
from .file import read_file

OPTIONS = frozenset({"file"})


class EnvProvider(BaseProvider):
    scheme = "env"

    @classmethod
    def from_config(cls, config: Config) -> EnvProvider:
        return cls()

    def get(self, ref: SecretRef) -> Secret:
        loc = split_locator(ref.locator)
        unknown = set(loc.query) - OPTIONS
        if unknown or loc.fragment or loc.query.get("file"):
            raise UsageError(
                f"secret {ref.name!r}: {ref.source!r} takes no "
                + (f"option {sorted(unknown)[0]!r}" if unknown else "#key or ?file=value"),
                "write env:VAR, or env:VAR?file for a variable that names a file",
            )
        as_file = "file" in loc.query
        if "*" not in loc.path:
            value = _value(ref.name, loc.path, as_file)
            return Secret(name=ref.name, version=content_version(value), value=value)
        tree = {var: _value(ref.name, var, as_file) for var in env_matches(loc.path, os.environ)}
        if not tree:
            raise SecretNotFound(
                f"secret {ref.name!r}: no environment variable matches {loc.path!r}",
                "export them before running secretd, or check the pattern",
            )
        return Secret(name=ref.name, version=tree_content_version(tree), value=b"", tree=tree)


def _value(name: str, var: str, as_file: bool) -> bytes:
    """The variable's value, or with ``as_file`` the contents of the file it names.

    Raises:
        SecretNotFound: the variable is not set, or (``as_file``) empty.
    """
    value = os.environb.get(var.encode())
    if value is None or as_file and not value:
        raise SecretNotFound(
            f"secret {name!r}: environment variable {var!r} is not set"
            + (" to a file's path" if value is not None else ""),
            f"export {var} before running secretd",
        )
    return read_file(Path(os.fsdecode(value)), name) if as_file else value
