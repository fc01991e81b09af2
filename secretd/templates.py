"""Render configuration templates from secrets, configs and the environment.

A template is a Jinja2 file rendered in Jinja2's immutable sandbox with strict undefined
names. It calls ``secret("NAME")``, ``config("NAME")`` (a name or a provider URI, resolved
by the caller's functions, so the broker alone talks to providers), ``env("VAR")`` or
``env("VAR", "default")``, and reads ``run.KEY``; filters ``b64encode``, ``tojson`` and
``indent`` shape values. A secret that is not UTF-8 text can only be written through
``b64encode``: anything else would write bytes the file's reader would not expect.

Every error is one line that names the template, the line and what is missing, and never a
value. Jinja2 itself is imported only here, when a template is used (``_jinja.py``).
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import safeopen
from .errors import SecretdError, UsageError

if TYPE_CHECKING:
    from jinja2 import nodes

    from ._jinja import Sandbox

__all__ = ["Rendered", "Use", "parse_delimiters", "render", "uses"]

KINDS = ("secret", "config", "env")
# The file name Jinja2 gives the template's frames, so that a runtime error's line is the
# template's own even when the error was raised inside secret() or a filter.
_FILENAME = "<secretd template>"
_RESERVED = ("{%", "%}", "{#", "#}")
_KNOWN = "templates know secret('NAME'), config('NAME'), env('VAR') and run.KEY"


@dataclass(frozen=True, repr=False)
class Rendered:
    """A rendered template. ``reads_secrets``: it calls ``secret()`` anywhere (even in a
    branch not taken), so the file is itself a secret."""

    data: bytes
    reads_secrets: bool

    def __repr__(self) -> str:
        return (
            f"Rendered(reads_secrets={self.reads_secrets}, data=<redacted {len(self.data)} bytes>)"
        )


@dataclass(frozen=True)
class Use:
    """One name a template uses: ``kind`` is secret, config, env or run; ``name`` is
    ``None`` when it is computed while rendering."""

    kind: str
    name: str | None
    line: int


def render(
    path: Path,
    *,
    secret: Callable[[str], bytes],
    config: Callable[[str], bytes],
    env: Mapping[str, str],
    run: Mapping[str, str],
    delimiters: tuple[str, str] | None = None,
) -> Rendered:
    """Render the template file at ``path``.

    Args:
        secret: a name or provider URI -> its value (the broker's errors pass through).
        config: the same for configs.
        env: what ``env("VAR")`` reads.
        run: what ``run.KEY`` reads.
        delimiters: the start and end of a value, for files that use ``{{ }}`` themselves.

    Raises:
        UsageError: the template cannot be read, does not parse, uses an undefined name,
            reaches for Python internals, or renders to ``safeopen.LIMIT`` bytes or more.
        SecretdError: what ``secret`` or ``config`` raised, its message prefixed with
            the template and the line.
    """
    from jinja2 import nodes

    from . import _jinja

    source, sandbox, tree = _load(path, delimiters)
    try:
        code = sandbox.compile(tree, filename=_FILENAME)
    except Exception as exc:  # noqa: BLE001 - a TemplateAssertionError (unknown filter)
        raise _failure(path, exc) from None
    functions = _jinja.functions(secret, config, env, run)
    template = sandbox.template_class.from_code(sandbox, code, sandbox.make_globals(functions))
    token = _jinja.source.set(source)
    try:
        text = _collect(template.generate())
    except SecretdError as exc:  # the broker's own error, and class: located, not replaced
        exc.message = _where(path, _line(exc)) + f": {exc.message}"
        exc.args = (exc.line(),)
        raise
    except Exception as exc:  # noqa: BLE001 - every other failure becomes one line, no text
        raise _failure(path, exc) from None
    finally:
        _jinja.source.reset(token)
    data = text.encode()
    if len(data) >= safeopen.LIMIT:
        raise _error(path, None, f"renders to {safeopen.LIMIT} bytes or more", None)
    reads = any(name.name == "secret" for name in tree.find_all(nodes.Name))
    return Rendered(data=data, reads_secrets=reads)


def uses(path: Path, *, delimiters: tuple[str, str] | None = None) -> list[Use]:
    """The names the template at ``path`` uses, resolving nothing, in order of first use.

    Raises:
        UsageError: the template cannot be read, does not parse, or uses a name that is
            neither one of its own variables nor one templates know.
    """
    from jinja2 import nodes

    _, sandbox, tree = _load(path, delimiters)
    found = _calls(tree) + _run_keys(tree)
    seen = {id(use_node) for use_node, _ in found}
    found += [
        (name, Use(name.name, None, name.lineno or 0))
        for name in tree.find_all(nodes.Name)
        if name.name in KINDS and name.ctx == "load" and id(name) not in seen
    ]
    _check_undeclared(path, tree, sandbox)
    result: list[Use] = []
    for use in sorted((use for _, use in found), key=lambda use: use.line):
        if use.name is None or all((use.kind, use.name) != (u.kind, u.name) for u in result):
            result.append(use)
    return result


def parse_delimiters(text: str) -> tuple[str, str]:
    """``"[[ ]]"`` -> ``("[[", "]]")``: the start and end of a value, separated by a space."""
    parts = text.split()
    if len(parts) != 2:
        raise UsageError(
            f"invalid template delimiters {text!r}",
            "give the start and end of a value separated by a space, e.g. '[[ ]]'",
        )
    return _check_delimiters((parts[0], parts[1])) or ("{{", "}}")


def _check_delimiters(delimiters: tuple[str, str] | None) -> tuple[str, str] | None:
    if delimiters is None:
        return None
    start, end = delimiters
    bad = not start or not end or start == end or any(c.isspace() for c in start + end)
    if bad or start in _RESERVED or end in _RESERVED:
        raise UsageError(
            f"invalid template delimiters {start!r} and {end!r}",
            "use two different strings without spaces, other than {% %} and {# #}, e.g. [[ ]]",
        )
    return delimiters


def _load(path: Path, delimiters: tuple[str, str] | None) -> tuple[str, Sandbox, nodes.Template]:
    """The template's text, the sandbox it renders in, and its syntax tree."""
    from . import _jinja

    source = _read(path)
    sandbox = _jinja.environment(_check_delimiters(delimiters))
    return source, sandbox, _parse(path, source, sandbox)


def _read(path: Path) -> str:
    try:
        data = safeopen.read_file(path)
    except OSError as exc:
        raise UsageError(f"cannot read template {str(path)!r}: {exc.strerror}") from None
    return safeopen.decode(data, f"template {str(path)!r}")


def _parse(path: Path, source: str, sandbox: Sandbox) -> nodes.Template:
    """The template's syntax tree; a template is one file, so it may not load others."""
    from jinja2 import nodes

    try:
        tree = sandbox.parse(source, filename=_FILENAME)
    except Exception as exc:  # noqa: BLE001 - a TemplateSyntaxError, or a lexer's bug
        raise _failure(path, exc) from None
    for node in tree.find_all((nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)):
        tag = type(node).__name__.lower().replace("fromimport", "from")
        raise _error(path, node.lineno, f"{{% {tag} %}} is not supported", "a template is one file")
    return tree


def _collect(chunks: Iterator[str]) -> str:
    """The rendered text, stopped as soon as it cannot fit under ``safeopen.LIMIT``."""
    from . import _jinja

    parts: list[str] = []
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size >= safeopen.LIMIT:
            raise _jinja.Mistake(f"renders to {safeopen.LIMIT} bytes or more")
        parts.append(chunk)
    return "".join(parts)


def _failure(path: Path, exc: Exception) -> UsageError:
    """The one line for a failed parse or render. Only our own texts, Jinja2's syntax
    errors (quoting the template's own text) and its undefined-name messages (which
    ``_jinja.Undefined`` keeps to the template's own names) are shown: any other
    exception's text could quote a value."""
    from jinja2 import TemplateSyntaxError, UndefinedError
    from jinja2.exceptions import SecurityError

    from . import _jinja

    line = _line(exc)
    if isinstance(exc, _jinja.Mistake):
        return _error(path, line, exc.message, exc.hint)
    if isinstance(exc, TemplateSyntaxError):
        return _error(path, exc.lineno, _syntax(exc.message), "see docs/configs.md#templates")
    if isinstance(exc, UndefinedError):
        return _error(path, line, str(exc), _KNOWN)
    if isinstance(exc, SecurityError):
        return _error(path, line, "a call that is not allowed", _jinja.INTERNALS)
    return _error(path, line, f"{type(exc).__name__} while rendering", None)


def _syntax(message: str | None) -> str:
    """Jinja2's first sentence, and the closing tags it looked for, on one line."""
    text = (message or "syntax error").splitlines()[0]
    first = text.split(". ")[0].rstrip(".")
    expected = re.search(r"looking for the following tags: (.*?)\.", text)
    return f"{first} (expected {expected.group(1)})" if expected else first


def _line(exc: BaseException) -> int | None:
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == _FILENAME:
            line = frame.lineno
    return line


def _error(path: Path, line: int | None, message: str, hint: str | None) -> UsageError:
    return UsageError(f"{_where(path, line)}: {message}", hint)


def _where(path: Path, line: int | None) -> str:
    return f"template {str(path)!r}" + (f", line {line}" if line else "")


def _calls(tree: nodes.Template) -> list[tuple[nodes.Node, Use]]:
    """``secret("db")``, ``config(...)``, ``env(...)``: the name, when it is a constant."""
    from jinja2 import nodes

    found: list[tuple[nodes.Node, Use]] = []
    for call in tree.find_all(nodes.Call):
        callee = call.node
        if isinstance(callee, nodes.Name) and callee.name in KINDS:
            first = call.args[0] if call.args else None
            name = first.value if isinstance(first, nodes.Const) else None
            found.append((callee, Use(callee.name, _text(name), call.lineno)))
    return found


def _run_keys(tree: nodes.Template) -> list[tuple[nodes.Node, Use]]:
    """``run.name`` and ``run["name"]``."""
    from jinja2 import nodes

    found: list[tuple[nodes.Node, Use]] = []
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        assert isinstance(node, nodes.Getattr | nodes.Getitem)
        if isinstance(node.node, nodes.Name) and node.node.name == "run":
            key = node.attr if isinstance(node, nodes.Getattr) else getattr(node.arg, "value", None)
            found.append((node.node, Use("run", _text(key), node.lineno)))
    return found


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _check_undeclared(path: Path, tree: nodes.Template, sandbox: Sandbox) -> None:
    from jinja2 import meta, nodes

    known = set(sandbox.globals) | {*KINDS, "run"}
    missing = meta.find_undeclared_variables(tree) - known
    for name in tree.find_all(nodes.Name):
        if name.name in missing:
            raise _error(path, name.lineno, f"{name.name!r} is undefined", _KNOWN)
