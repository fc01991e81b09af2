"""Arbitrary template text renders, or raises secretd's own error, never another one, and
no error line quotes a secret's value."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from secretd.errors import NotInStore, SecretdError, UsageError
from secretd.templates import render, uses

CANARY = "Zq9canary"
SECRETS = {"a": CANARY.encode(), "b": b"\xff" + CANARY.encode(), "c": b""}

FRAGMENTS = [
    "{{", "}}", "{%", "%}", "{#", "#}", "{{-", "-}}", " ", "\n", "'", '"', "(", ")", "[", "]",
    ".", "|", "~", "*", "**", "%", "/", "//", "-", "+", ",", ":", "=", "==", "0", "7", "99999",
    "secret", "config", "env", "run", "secret(", "env(", "config(", "run[", "range", "cycler",
    "joiner", "namespace", "dict",
    "secret('a')", 'secret("b")', "secret('c')", "secret('zz')", "config('n')", "env('E')",
    "env('X', 1)", "run.name", "run['image']", "__class__", "__globals__", "__mro__",
    "__subclasses__()", "__init__", "format", "mro", "attr", "if", "else", "endif", "for",
    "in", "endfor", "set", "macro", "endmacro", "call", "endcall", "filter", "endfilter",
    "raw", "endraw", "with", "endwith", "include", "import", "extends", "block", "endblock",
    "b64encode", "tojson", "indent", "int", "list", "join", "replace", "map", "select",
    "groupby", "batch", "sum", "length", "string", "format", "center", "wordwrap", "x", "loop",
    "self", "caller", "varargs", "true", "none", "is", "defined", "not", "and", "or",
]  # fmt: skip
TEXT = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=4)), max_size=40).map(
    "".join
)


def secret(name: str) -> bytes:
    if name not in SECRETS:
        raise NotInStore(name)
    return SECRETS[name]


@given(TEXT)
def test_any_template_renders_or_is_one_of_our_errors(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.tmpl"
        path.write_text(text, errors="surrogatepass")
        try:
            render(
                path,
                secret=secret,
                config=lambda name: b"conf",
                env={"E": "e"},
                run={"name": "app", "image": "img"},
            )
        except SecretdError as exc:
            assert CANARY not in exc.line()
            assert "\n" not in exc.line()
        try:
            uses(path)
        except UsageError as exc:
            assert "\n" not in exc.line()


@given(TEXT, st.sampled_from([("[[", "]]"), ("<%", "%>"), ("${", "}"), ("((", "))")]))
def test_any_template_with_other_delimiters_renders_or_is_a_usage_error(
    text: str, delimiters: tuple[str, str]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.tmpl"
        text = text.replace("{{", delimiters[0]).replace("}}", delimiters[1])
        path.write_text(text, errors="surrogatepass")
        try:
            render(
                path,
                secret=lambda name: b"v",
                config=lambda name: b"c",
                env={},
                run={},
                delimiters=delimiters,
            )
        except UsageError as exc:
            assert "\n" not in exc.line()
