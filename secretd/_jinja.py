"""The Jinja2 half of ``templates.py``: the sandbox, the functions templates call, the limits.

Kept apart so that Jinja2 is imported only when a template is rendered or checked (a test
pins that ``secretd --help`` and ``secretd run`` without templates never load it).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any, NoReturn

from jinja2 import StrictUndefined
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment, safe_range
from jinja2.utils import missing

from .errors import SecretdError

# One render may iterate over this many range() items, and build a string or list this long
# by repetition: enough for any configuration file, and a runaway loop stops early.
MAX_ITEMS = 100_000
MAX_EXPONENT = 1_000
_COMPUTED = "(a computed name)"
INTERNALS = "templates may not reach Python internals or change values"
# Read while a template renders: a name in an error is shown only when the template's own
# text holds it (a computed key may be a secret value).
source: ContextVar[str] = ContextVar("secretd_template_source", default="")


class Mistake(Exception):
    """A template mistake found while rendering; its text never holds a value."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class Refused(Mistake):
    """The template reached for Python internals (``''.__class__``)."""


class Binary:
    """A secret or config that is not UTF-8 text: only ``b64encode`` can use it."""

    __slots__ = ("_data", "_label")

    def __init__(self, data: bytes, label: str) -> None:
        self._data = data
        self._label = label

    def __str__(self) -> str:
        raise Mistake(f"{self._label} is not UTF-8 text", "pass it through b64encode")

    def __repr__(self) -> str:
        return f"<{self._label}: {len(self._data)} bytes>"


def shown(name: object) -> str:
    """``name`` quoted for an error when the template's own text holds it; a name computed
    while rendering may be a secret's value, so it is not shown."""
    return repr(name) if isinstance(name, str) and name in source.get() else _COMPUTED


class Undefined(StrictUndefined):
    """``StrictUndefined`` whose message names only what the template itself wrote."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        if self._undefined_obj is missing:  # a variable: always a name the template wrote
            return f"{self._undefined_name!r} is undefined"
        return f"{shown(self._undefined_name)} is undefined"


class Sandbox(ImmutableSandboxedEnvironment):
    """Jinja2's immutable sandbox, strict about undefined names, refusing internals with an
    error (not a silent undefined), and bounding repetition and powers."""

    intercepted_binops = frozenset({"*", "**"})

    def unsafe_undefined(self, obj: Any, attribute: str) -> NoReturn:
        raise Refused(f"{attribute!r} is not allowed", INTERNALS)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int) and abs(right) > MAX_EXPONENT:
            raise Mistake(f"an exponent above {MAX_EXPONENT}")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(times, int):
                    if len(seq) * times > MAX_ITEMS:
                        raise Mistake(f"a repetition longer than {MAX_ITEMS} items")
        return super().call_binop(context, operator, left, right)


def b64encode(value: object) -> str:
    """Base64 of a value's bytes: a secret's exact bytes, text as UTF-8."""
    data = value._data if isinstance(value, Binary) else str(value).encode()
    return base64.b64encode(data).decode("ascii")


def tojson(value: object, indent: int | None = None) -> str:
    """JSON for a configuration file: plain (not HTML-escaped as Jinja2's), keys sorted."""
    return json.dumps(
        value, indent=indent, sort_keys=True, ensure_ascii=False, default=_json_default
    )


def _json_default(value: object) -> NoReturn:
    if isinstance(value, Binary | Undefined):
        str(value)  # raises the Mistake that says to use b64encode, or names the undefined
    raise Mistake(f"a {type(value).__name__} value cannot be written as JSON")


def environment(delimiters: tuple[str, str] | None) -> Sandbox:
    start, end = delimiters or ("{{", "}}")
    env = Sandbox(
        undefined=Undefined,
        variable_start_string=start,
        variable_end_string=end,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["b64encode"] = b64encode
    env.filters["tojson"] = tojson
    del env.globals["lipsum"]  # lipsum(n=10**7) would take minutes
    return env


def functions(
    secret: Callable[[str], bytes],
    config: Callable[[str], bytes],
    env: Mapping[str, str],
    run: Mapping[str, str],
) -> dict[str, Any]:
    """The globals a template sees: ``secret()``, ``config()``, ``env()``, ``run`` and a
    ``range`` whose items count against one budget for the whole render."""
    budget = [MAX_ITEMS]

    def value(kind: str, fetch: Callable[[str], bytes], args: tuple[object, ...]) -> str | Binary:
        name = _name(kind, args, 1)
        if name not in source.get():  # computed, maybe from a value: its errors must not say it
            try:
                data = fetch(name)
            except SecretdError as exc:
                raise Mistake(f"{kind} {_COMPUTED} cannot be read ({type(exc).__name__})") from None
        else:
            data = fetch(name)  # the broker's own error names what the template wrote
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return Binary(data, f"{kind} {shown(name)}")

    def env_(*args: object) -> str:
        name = _name("env", args, 2)
        if name in env:
            return env[name]
        if len(args) == 2:
            return str(args[1])
        raise Mistake(
            f"environment variable {shown(name)} is not set",
            f"set it, or give a default: env({shown(name).replace(_COMPUTED, 'NAME')}, 'default')",
        )

    def range_(*args: int) -> range:
        items = safe_range(*args)
        budget[0] -= len(items)
        if budget[0] < 0:
            raise Mistake(f"loops over more than {MAX_ITEMS} range() items")
        return items

    return {
        "secret": lambda *args: value("secret", secret, args),
        "config": lambda *args: value("config", config, args),
        "env": env_,
        "run": run,
        "range": range_,
    }


def _name(kind: str, args: tuple[object, ...], most: int) -> str:
    if not 1 <= len(args) <= most or not isinstance(args[0], str) or not args[0]:
        usage = f"{kind}('NAME')" + (f" or {kind}('NAME', 'default')" if most == 2 else "")
        raise Mistake(f"{kind}() takes a name as a string", f"write {usage}")
    return args[0]
