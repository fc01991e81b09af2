"""The nouns every layer passes to the next: plain, frozen data.

Secret values are ``bytes`` (secrets may be binary) and never appear in a repr, a str or
an exception: the dataclasses below redact them.
"""

from __future__ import annotations

import dataclasses
import functools
import signal
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .errors import UsageError

DEFAULT_SECRETS_DIR = "/run/secrets"
DEFAULT_MODE = 0o444


@dataclass(frozen=True)
class SecretRef:
    """A request for one secret: where it comes from and where it lands.

    ``target`` is relative to the secrets directory unless absolute. ``uid``/``gid`` of
    ``None`` mean "the default owner" (root, or the caller inside a user namespace).
    """

    name: str
    source: str
    target: str
    uid: int | None = None
    gid: int | None = None
    mode: int = DEFAULT_MODE

    @property
    def scheme(self) -> str:
        return self.source.partition(":")[0]

    @property
    def locator(self) -> str:
        """The provider-specific part of the source URI, after ``scheme:``."""
        return self.source.partition(":")[2]


@dataclass(frozen=True)
class Secret:
    """A resolved secret. ``tree`` is set instead of a single value for providers that
    materialise a whole directory (one file per key)."""

    name: str
    version: str
    value: bytes = field(repr=False)
    tree: Mapping[str, bytes] | None = field(default=None, repr=False, compare=False)
    lease_id: str | None = field(default=None, repr=False)
    lease_duration: int = 0
    renewable: bool = False

    def __repr__(self) -> str:
        shown = (
            f"<redacted tree of {len(self.tree)} files>"
            if self.tree is not None
            else f"<redacted {len(self.value)} bytes>"
        )
        return f"Secret(name={self.name!r}, version={self.version!r}, value={shown})"

    __str__ = __repr__


@dataclass(frozen=True)
class SecretFile:
    """One file to write into a secrets mount. Files with the same ``group`` (a directory
    target: the files of one tree secret) are replaced together, as one directory."""

    target: str
    value: bytes = field(repr=False)
    uid: int | None = None
    gid: int | None = None
    mode: int = DEFAULT_MODE
    group: str | None = None

    def __repr__(self) -> str:
        return (
            f"SecretFile(target={self.target!r}, value=<redacted {len(self.value)} bytes>, "
            f"uid={self.uid}, gid={self.gid}, mode={self.mode:#o}, group={self.group!r})"
        )

    __str__ = __repr__


@dataclass(frozen=True)
class SecretMount:
    """The files one run gets: relative targets land in the secrets directory, absolute
    ones at their own path (each bound read-only on its own). ``size`` caps the tmpfs."""

    files: tuple[SecretFile, ...]
    size: int

    def relative(self) -> list[SecretFile]:
        return [f for f in self.files if not f.target.startswith("/")]

    def absolute(self) -> list[SecretFile]:
        return [f for f in self.files if f.target.startswith("/")]


@dataclass(frozen=True)
class RunSpec:
    """Everything ``secretd run`` was asked to do, independent of the runtime.

    ``env`` holds the ``-e`` values (already checked by exposure.py); they travel to the
    command's environment, which is exactly why secrets belong in ``secrets`` instead.
    """

    command: tuple[str, ...] = ()
    secrets: tuple[SecretRef, ...] = ()
    env: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # may hold credentials
    image: str | None = None
    runtime: str = "auto"
    user: str | None = None
    workdir: str | None = None
    name: str | None = None
    secrets_dir: str = DEFAULT_SECRETS_DIR
    file_env: bool = False
    entrypoint: str | None = None
    volumes: tuple[str, ...] = ()
    publish: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    network: str | None = None
    hostname: str | None = None
    restart: str | None = None
    read_only: bool = False
    tty: bool = False
    interactive: bool = False
    detach: bool = False
    remove: bool = False

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: object) -> RunSpec:
        """Rebuild a RunSpec from ``to_json`` output (the daemon's wire format), checking
        every field against its annotation: ``"command": "rm -rf"`` is refused, not taken
        as a list of characters.

        Raises:
            UsageError: an unknown field, or a value of the wrong type (naming the field
                and the type it must have), or a string holding NUL.
        """
        spec: RunSpec = _decode(cls, data, "")
        return spec


class Container(Protocol):
    """A launched command, whatever runs it."""

    id: str

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait until the command ends and return its exit status (128+N if killed by
        signal N), or ``None`` if ``timeout`` seconds passed first."""
        ...

    def update(self, files: tuple[SecretFile, ...]) -> None:
        """Replace the secret files while the command runs (rotation, re-issued leases)."""
        ...

    def signal(self, signum: signal.Signals) -> None: ...

    def remove(self) -> None:
        """Release everything the container holds (idempotent)."""
        ...


# -- the wire decoder: JSON values -> the nouns above, typed by their annotations ------

_NOUNS: dict[Any, tuple[str, str]] = {
    str: ("a string", "strings"),
    int: ("an integer", "integers"),
    bool: ("true or false", "booleans"),
}
_JSON_KINDS = {
    str: "a string", bool: "a boolean", int: "an integer", float: "a number",
    list: "a list", dict: "an object", type(None): "null",
}  # fmt: skip


def _decode(kind: Any, value: Any, path: str) -> Any:
    """``value`` (parsed JSON) as ``kind``; ``path`` names the place for errors."""
    if typing.get_origin(kind) is types.UnionType:  # ``X | None``: the only unions used
        if value is None:
            return None
        (kind,) = (arg for arg in typing.get_args(kind) if arg is not type(None))
        return _decode_as(kind, value, path, f"{_expected(kind)[0]} or null")
    return _decode_as(kind, value, path, _expected(kind)[0])


def _decode_as(kind: Any, value: Any, path: str, expected: str) -> Any:
    if kind in _NOUNS:
        if type(value) is not kind:  # exactly: JSON's true is not the integer 1
            raise _wrong(path, expected, value)
        if kind is str and "\0" in value:
            raise UsageError(f"RunSpec field {path!r} holds a NUL character")
        return value
    if typing.get_origin(kind) is tuple:
        items = typing.get_args(kind)
        if not isinstance(value, list) or items[-1] is not Ellipsis and len(value) != len(items):
            raise _wrong(path, expected, value)
        kinds = [items[0]] * len(value) if items[-1] is Ellipsis else items
        pairs = enumerate(zip(kinds, value, strict=True))
        return tuple(_decode(k, v, f"{path}[{i}]") for i, (k, v) in pairs)
    if not isinstance(value, dict):
        raise _wrong(path, expected, value)
    hints = _hints(kind)
    unknown = sorted(set(value) - set(hints))
    if unknown:
        names = ", ".join(map(repr, unknown))  # repr: a field name may hold anything
        raise UsageError(f"{_place(path, kind)} has unknown fields: {names}")
    missing = [
        f.name
        for f in dataclasses.fields(kind)
        if f.name not in value
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise UsageError(f"{_place(path, kind)} lacks {', '.join(missing)}")
    prefix = f"{path}." if path else ""
    return kind(**{name: _decode(hints[name], v, prefix + name) for name, v in value.items()})


@functools.cache
def _hints(kind: type) -> dict[str, Any]:
    return typing.get_type_hints(kind)


def _expected(kind: Any) -> tuple[str, str]:
    """What a value of ``kind`` is called in errors: (one, several)."""
    if kind in _NOUNS:
        return _NOUNS[kind]
    if typing.get_origin(kind) is types.UnionType:
        (inner,) = (arg for arg in typing.get_args(kind) if arg is not type(None))
        return f"{_expected(inner)[0]} or null", f"{_expected(inner)[1]} or nulls"
    if typing.get_origin(kind) is tuple:
        items = typing.get_args(kind)
        if items[-1] is Ellipsis:
            return f"a list of {_expected(items[0])[1]}", f"lists of {_expected(items[0])[1]}"
        several = f"{len(items)} {_expected(items[0])[1]}"  # the pairs used hold one type
        return f"a list of {several}", f"lists of {several}"
    return f"a {kind.__name__} object", f"{kind.__name__} objects"


def _place(path: str, kind: type) -> str:
    return f"RunSpec field {path!r}" if path else kind.__name__


def _wrong(path: str, expected: str, value: Any) -> UsageError:
    got = _JSON_KINDS.get(type(value), type(value).__name__)
    if not path:
        return UsageError(f"a RunSpec must be a JSON object, not {got}")
    return UsageError(f"RunSpec field {path!r} must be {expected}, not {got}")
