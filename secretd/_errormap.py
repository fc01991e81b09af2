"""A wrapped library's exceptions turned into secretd's: one table per library, one reader.

Each backend (hvac for Vault, botocore for AWS, the Docker SDK) lists, most specific
first, which library exception becomes which of our errors and with what words, as httpx
maps its transport's exceptions. ``mapped`` reads such a table around a call. The error
it raises comes ``from None`` (a library's text can hold a URL with a token, or whatever a
server sent) and carries the request's ``fields`` (provider, method, path): names only,
never a value. Tables name library classes, so backends build them on first use: nothing
here imports a library.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from .errors import SecretdError


class Names(Mapping[str, object]):
    """What a message template may name: the caller's values, ``exc`` (the library's
    exception) and ``kind`` (its class name). A callable value is called with the
    exception when a template uses it, so a derived detail costs nothing until needed."""

    def __init__(self, values: Mapping[str, object], exc: BaseException) -> None:
        self._values = {**values, "exc": exc, "kind": type(exc).__name__}
        self.exc = exc

    def __getitem__(self, key: str) -> object:
        value = self._values[key]
        return value(self.exc) if callable(value) else value

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


@dataclass(frozen=True)
class Rule:
    """Our error class and its message (and hint) as ``str.format`` templates over
    ``Names``; an empty hint is none."""

    error: type[SecretdError]
    message: str
    hint: str | None = None

    def __call__(self, exc: BaseException, names: Names) -> SecretdError:
        hint = self.hint.format_map(names) if self.hint else ""
        return self.error(self.message.format_map(names), hint or None)


# A table entry that reads the exception further (an AWS error code, say); ``None`` leaves
# the exception alone, unmapped.
Build = Callable[[Any, Names], "SecretdError | None"]
ErrorMap = Sequence[tuple[type[BaseException] | tuple[type[BaseException], ...], Rule | Build]]


def raised_in(exc: BaseException, modules: tuple[str, ...]) -> bool:
    """Whether ``exc`` passed through one of ``modules`` (say, a library's answer parser,
    which trusts the server's types: a number where an object belongs is an
    AttributeError deep inside)."""
    frame = exc.__traceback__
    while frame is not None:
        if str(frame.tb_frame.f_globals.get("__name__")).startswith(modules):
            return True
        frame = frame.tb_next
    return False


def only_from(modules: tuple[str, ...], rule: Rule | Build) -> Build:
    """``rule`` for an exception raised inside ``modules``; the same exception class
    raised by secretd's own code is a bug to show, not a server's answer to map."""

    def build(exc: BaseException, names: Names) -> SecretdError | None:
        return rule(exc, names) if raised_in(exc, modules) else None

    return build


def translate(
    table: ErrorMap, exc: BaseException, values: Mapping[str, object]
) -> SecretdError | None:
    """Our error for ``exc`` by the first entry of ``table`` it is an instance of."""
    for kinds, entry in table:
        if isinstance(exc, kinds):
            return entry(exc, Names(values, exc))
    return None


@contextmanager
def mapped(
    table: ErrorMap, fields: Mapping[str, str] | None = None, **values: object
) -> Iterator[None]:
    """Raise our error in place of a library exception ``table`` lists (others pass).

    Args:
        table: library exception classes, most specific first, and what each becomes.
        fields: what the request was about (``provider``, ``method``, ``path``), kept on
            the error as ``fields`` for callers that need more than its line.
        values: the names the table's templates use.
    """
    try:
        yield
    except Exception as exc:
        error = translate(table, exc, values)
        if error is None:
            raise
        if fields:
            error.fields = MappingProxyType(dict(fields))
        raise error from None
