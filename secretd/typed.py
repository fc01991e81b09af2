"""JSON values -> dataclasses, each field checked against its annotation.

For data secretd did not write itself this run: a daemon request's ``RunSpec``, a
container's ``meta.json``. ``"command": "rm -rf"`` is refused rather than taken as a list
of characters, ``true`` is not the integer 1, and a string never holds a NUL (no path,
argument or name can). The annotations are the table: a new field is checked as soon as
it is declared. Supported: ``str``, ``int``, ``float``, ``bool``, ``X | None``,
``tuple[X, ...]``, ``tuple[X, Y]``, ``list[X]`` and nested dataclasses.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any, TypeVar

from .errors import UsageError

T = TypeVar("T")

_NOUNS: dict[Any, tuple[str, str]] = {
    str: ("a string", "strings"),
    int: ("an integer", "integers"),
    float: ("a number", "numbers"),
    bool: ("true or false", "booleans"),
}
_JSON_KINDS = {
    str: "a string", bool: "a boolean", int: "an integer", float: "a number",
    list: "a list", dict: "an object", type(None): "null",
}  # fmt: skip


def decode(kind: type[T], value: object, what: str) -> T:
    """``value`` (parsed JSON) as a ``kind`` dataclass.

    Args:
        what: how errors name the whole (``"RunSpec"``, ``"container record"``).

    Raises:
        UsageError: a wrong type (naming the field and the type it must have), an unknown
            or missing field, or a NUL in a string.
    """
    decoded: T = _Decoder(what).decode(kind, value, "")
    return decoded


class _Decoder:
    def __init__(self, what: str) -> None:
        self.what = what

    def decode(self, kind: Any, value: Any, path: str) -> Any:
        if typing.get_origin(kind) is types.UnionType:  # ``X | None``: the only unions used
            if value is None:
                return None
            (kind,) = (arg for arg in typing.get_args(kind) if arg is not type(None))
            return self._as(kind, value, path, f"{_expected(kind)[0]} or null")
        return self._as(kind, value, path, _expected(kind)[0])

    def _as(self, kind: Any, value: Any, path: str, expected: str) -> Any:
        if kind in _NOUNS:
            return self._scalar(kind, value, path, expected)
        origin, items = typing.get_origin(kind), typing.get_args(kind)
        if origin in (tuple, list):
            fixed = origin is tuple and items[-1] is not Ellipsis
            if not isinstance(value, list) or fixed and len(value) != len(items):
                raise self._wrong(path, expected, value)
            kinds = items if fixed else [items[0]] * len(value)
            pairs = enumerate(zip(kinds, value, strict=True))
            return origin(self.decode(k, v, f"{path}[{i}]") for i, (k, v) in pairs)
        if not isinstance(value, dict):
            raise self._wrong(path, expected, value)
        return self._fields(kind, value, path)

    def _scalar(self, kind: Any, value: Any, path: str, expected: str) -> Any:
        if kind is float and type(value) is int:
            return float(value)
        if type(value) is not kind:  # exactly: JSON's true is not the integer 1
            raise self._wrong(path, expected, value)
        if kind is str and "\0" in value:
            raise UsageError(f"{self._place(path)} holds a NUL character")
        return value

    def _fields(self, kind: Any, value: dict[str, Any], path: str) -> Any:
        hints = _hints(kind)
        unknown = sorted(set(value) - set(hints))
        if unknown:
            names = ", ".join(map(repr, unknown))  # repr: a field name may hold anything
            raise UsageError(f"{self._place(path)} has unknown fields: {names}")
        missing = [
            f.name
            for f in dataclasses.fields(kind)
            if f.name not in value
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ]
        if missing:
            raise UsageError(f"{self._place(path)} lacks {', '.join(missing)}")
        prefix = f"{path}." if path else ""
        return kind(
            **{name: self.decode(hints[name], v, prefix + name) for name, v in value.items()}
        )

    def _place(self, path: str) -> str:
        return f"{self.what} field {path!r}" if path else self.what

    def _wrong(self, path: str, expected: str, value: Any) -> UsageError:
        got = _JSON_KINDS.get(type(value), type(value).__name__)
        if not path:
            return UsageError(f"a {self.what} must be a JSON object, not {got}")
        return UsageError(f"{self._place(path)} must be {expected}, not {got}")


@functools.cache
def _hints(kind: type) -> dict[str, Any]:
    return typing.get_type_hints(kind)


def _expected(kind: Any) -> tuple[str, str]:
    """What a value of ``kind`` is called in errors: (one, several)."""
    if kind in _NOUNS:
        return _NOUNS[kind]
    origin, items = typing.get_origin(kind), typing.get_args(kind)
    if origin is types.UnionType:
        (inner,) = (arg for arg in items if arg is not type(None))
        return f"{_expected(inner)[0]} or null", f"{_expected(inner)[1]} or nulls"
    if origin in (tuple, list):
        several = _expected(items[0])[1]
        if origin is tuple and items[-1] is not Ellipsis:  # the pairs used hold one type
            several = f"{len(items)} {several}"
        return f"a list of {several}", f"lists of {several}"
    return f"a {kind.__name__} object", f"{kind.__name__} objects"
