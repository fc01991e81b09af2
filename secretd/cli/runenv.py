"""The environment a ``secretd run`` command gets, and the warnings about it.

Each variable keeps where it came from (``-e``, ``--env-file ci.env:3``, or secretd's own
environment, which a host command inherits), so that a warning names the place to fix.
A host command's environment is read by the command and every process it starts
(``/proc/<pid>/environ``); a container's also by anyone who may run ``docker inspect``:
the warnings say which. ``--clean-env`` passes a host command only a few inherited
variables; provider credentials never travel (``backends.CREDENTIAL_ENV``).

secretd's environment is a parameter (``environ``): the in-process CLI's ``os.environ``,
or the caller's, which a forwarded run brought to the daemon (``cli/forwarded.py``), with
the daemon's own left alone. Warnings go to ``warn``: stderr, or the daemon's list, which
it writes to the caller's stderr before the run starts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .. import ci, safeopen
from ..backends import CREDENTIAL_VARIABLES
from ..errors import UsageError
from ..refs import env_variables
from ..spec import SecretRef

ENV_FILE_HINT = "use KEY=VALUE lines (Docker's --env-file rules: values are taken as written)"
INHERITED = "inherited"
# What --clean-env lets a host command inherit, besides CI* (the CI system's own).
CLEAN_ENV = ("PATH", "HOME", "USER", "LANG", "TZ", "TERM")


@dataclass(frozen=True)
class Variable:
    """One variable for the command, and where it came from (``-e``, ``--env-file F:N``
    or ``inherited``)."""

    name: str
    value: str = field(repr=False)
    origin: str


def read_env(
    values: tuple[str, ...], env_files: tuple[Path, ...], environ: Mapping[str, str]
) -> list[Variable]:
    """``-e``/``--env-file`` as Docker reads them: ``KEY=VALUE`` literally, and a bare
    ``KEY`` taken from secretd's environment, ``environ`` (omitted when unset).

    Raises:
        UsageError: a malformed name, or an ``--env-file`` that cannot be read.
    """
    lines: list[tuple[str, str]] = []
    for path in env_files:
        lines += env_file_lines(path)
    lines += [("-e", value) for value in values]
    found: list[Variable] = []
    for origin, item in lines:
        name, eq, value = item.partition("=")
        if not name or any(c.isspace() for c in name):
            hint = "use KEY=VALUE" if origin == "-e" else ENV_FILE_HINT
            raise UsageError(f"invalid variable name {name!r} in {origin}", hint)
        if eq:
            found.append(Variable(name, value, origin))
        elif name in environ:
            found.append(Variable(name, environ[name], origin))
    return found


def env_file_lines(path: Path) -> list[tuple[str, str]]:
    """The ``KEY[=VALUE]`` lines of an ``--env-file`` (a regular file smaller than 500 KiB),
    each with the place it came from (``--env-file PATH:LINE``); values are literal,
    nothing is expanded.

    Raises:
        UsageError: the file cannot be read, is not UTF-8, or holds a NUL character.
    """
    try:
        text = safeopen.decode(safeopen.read_file(path), f"--env-file {path}")
    except OSError as exc:
        raise UsageError(f"cannot read --env-file {path}: {exc.strerror}") from None
    lines = []
    for number, line in enumerate(text.split("\n"), 1):
        where = f"--env-file {path}:{number}"
        if "\0" in line:
            raise UsageError(f"NUL character in {where}", ENV_FILE_HINT)
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            lines.append((where, line.lstrip().removesuffix("\r")))
    return lines


def inherited_env(
    secrets: Sequence[SecretRef], environ: Mapping[str, str], clean: bool = False
) -> list[Variable]:
    """secretd's environment (``environ``) for a host command, less what must not travel
    with it: the variables that ``env:`` secrets moved into files, and every provider's
    credentials (``backends.CREDENTIAL_ENV``; pass one on purpose with ``-e NAME``).
    ``clean`` keeps only ``CLEAN_ENV``, the CI system's marker (``GITHUB_ACTIONS``,
    ``ci.MARKERS``) and its ``CI*`` variables whose names mark no secret (``CI_JOB_TOKEN``
    stays behind)."""
    moved = env_variables(secrets, environ)
    return [
        Variable(key, value, INHERITED)
        for key, value in environ.items()
        if key not in moved
        and key not in CREDENTIAL_VARIABLES
        and (not clean or _clean(key, value))
    ]


def _clean(name: str, value: str) -> bool:
    if name in CLEAN_ENV or name in ci.MARKERS:  # a marker keeps masks working in a daemon
        return True
    from ..exposure import variable_name_reason

    return name.startswith("CI") and not variable_name_reason(name, value)


def check_exposure(
    given: Sequence[Variable],
    inherited: Sequence[Variable],
    allow: tuple[str, ...],
    strict: bool,
    host: bool,
    warn: Callable[[str], None],
) -> None:
    """Warn (``warn``, one line each) about ``-e``/``--env-file`` values that look like
    secrets (refuse them when ``strict``); when ``strict``, warn by name about inherited
    ones too.

    Raises:
        UsageError: strict, and a given value looks like a secret.
    """
    if not given and not (strict and inherited):
        return  # nothing to check: a plain run does not load exposure.py (~0.5 ms)
    from ..exposure import check_env, readers, where

    origins = {v.name: v.origin for v in given}
    found = check_env([(v.name, v.value) for v in given], allow)
    if found and strict:
        names = ", ".join(f"{where(e.name, origins[e.name])} ({e.reason})" for e in found)
        raise UsageError(
            f"{names}: environment values are {readers(host)}",
            "pass them with --secret, or accept one with --allow-env NAME",
        )
    for exposure in found:
        warning = exposure.warning(origins[exposure.name], host)
        warn(f"secretd: warning: {warning}")
    if strict and inherited:
        _warn_inherited(inherited, allow, {v.name for v in given}, warn)


def _warn_inherited(
    inherited: Sequence[Variable],
    allow: tuple[str, ...],
    given: set[str],
    warn: Callable[[str], None],
) -> None:
    """One line naming every inherited variable that looks like a secret (never a value)."""
    from ..exposure import check_env

    pairs = [(v.name, v.value) for v in inherited if v.name not in given]
    names = [e.name for e in check_env(pairs, allow)]
    if names:
        warn(
            f"secretd: warning: inherited {', '.join(sorted(names))} "
            f"{'looks' if len(names) == 1 else 'look'} like "
            f"{'a secret' if len(names) == 1 else 'secrets'}; the command and every process "
            "it starts can read them (/proc/<pid>/environ). Move one into a file with "
            "--secret NAME=env:VAR, or pass --clean-env."
        )
