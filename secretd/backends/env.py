"""``env:VAR``: a secret handed over in the process environment, as CI systems do.

* ``env:VAR?file``: VAR holds the path of a file that holds the value (GitLab's File-type
  variables, which CI runners write to a temporary file); the file is read by
  ``safeopen``'s rules, as ``file:`` is.
* ``NAME=env:APP_*``: every variable the pattern matches, as one tree secret (a file per
  variable under ``NAME/``). Without a name, ``refs.parse_refs`` expands the pattern into
  one reference per variable instead (docs/references.md).

The environment is this process's own, unless one is given: the daemon reads a forwarded
run's ``env:`` secrets from the environment its client sent (``caller_run``), never from
its own.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
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
    """``env:`` secrets, read from one environment.

    Args:
        environ: the variables to read (a caller's, in the daemon); by default this
            process's environment, as it is at each read.
        files: whether ``?file`` reads the file a variable names (not for a caller of
            the daemon, which would read it with its own rights).
    """

    scheme = "env"

    def __init__(self, environ: Mapping[str, str] | None = None, files: bool = True) -> None:
        self._environ = environ
        self._files = files

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
        if as_file and not self._files:
            raise file_refused(ref)
        if "*" not in loc.path:
            value = self._value(ref.name, loc.path, as_file)
            return Secret(name=ref.name, version=content_version(value), value=value)
        names = map(os.fsdecode, os.environb) if self._environ is None else self._environ
        matches = env_matches(loc.path, names)
        tree = {var: self._value(ref.name, var, as_file) for var in matches}
        if not tree:
            raise SecretNotFound(
                f"secret {ref.name!r}: no environment variable matches {loc.path!r}",
                "export them before running secretd, or check the pattern",
            )
        return Secret(name=ref.name, version=tree_content_version(tree), value=b"", tree=tree)

    def _value(self, name: str, var: str, as_file: bool) -> bytes:
        """The variable's value, or with ``as_file`` the contents of the file it names.

        Raises:
            SecretNotFound: the variable is not set, or (``as_file``) empty.
        """
        if self._environ is None:
            value = os.environb.get(os.fsencode(var))
        else:
            text = self._environ.get(var)
            value = None if text is None else os.fsencode(text)
        if value is None or as_file and not value:
            raise SecretNotFound(
                f"secret {name!r}: environment variable {var!r} is not set"
                + (" to a file's path" if value is not None else ""),
                f"export {var} before running secretd",
            )
        return read_file(Path(os.fsdecode(value)), name) if as_file else value


def file_refused(ref: SecretRef) -> UsageError:
    """The daemon's answer to a caller's ``env:VAR?file``."""
    return UsageError(
        f"secret {ref.name!r} comes from {ref.source}, a file the daemon does not read for you",
        "use --no-daemon",
    )
