"""Exposure detection: any -e name and value is judged without an exception, and a reason
is one of a fixed set of phrases, so no part of a value can reach the warning."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from secretd.exposure import check_env

# Pieces the rules give meaning to, mixed with anything at all.
PIECES = st.sampled_from(
    [
        "://", ":", "@", "=", ";", "&", "?", "#", ",", " ", "\n", "{", "}", "[", "]", '"',
        "/", "_", "-", ".", "eyJ", "Bearer ", "Basic ", "password", "Pwd", "AccountKey",
        "TOKEN", "KEY", "PRIMARY", "URL", "TTL", "ID", "-----BEGIN PRIVATE KEY-----",
        "AKIA", "ghp_", "sk_live_", "xoxb-", "%", "\x00", "0123456789abcdef", "Zq8",
    ]
)  # fmt: skip
TEXT = st.lists(PIECES | st.text(max_size=8), max_size=12).map("".join)
JSON_TEXT = st.recursive(
    st.text(max_size=6).map(repr),
    lambda inner: st.lists(inner, max_size=3).map(lambda items: "[" + ",".join(items) + "]"),
).map(lambda body: '{"password": ' + body.replace("'", '"') + "}")
REASON = re.compile(
    r"name contains [A-Z]+"
    r"|value has a field whose name contains [A-Z]+"
    r"|value matches the [A-Za-z0-9 /#.()-]+ pattern"
    r"|value is (?:an Authorization header value|a URL with a password"
    r"|a URL with a secret parameter|a long random string)"
    r"|value holds user:password@host"
)


@given(name=st.text(max_size=40) | TEXT, value=st.text() | TEXT | JSON_TEXT)
def test_any_variable_is_judged_and_no_reason_carries_its_value(name: str, value: str) -> None:
    for found in check_env([(name, value)]):
        assert found.name == name
        assert REASON.fullmatch(found.reason), found.reason
        assert found.warning().startswith(f"-e {name} looks like a secret ({found.reason}); ")


@given(depth=st.integers(min_value=1, max_value=200_000))
def test_json_nested_beyond_the_stack_is_not_an_error(depth: int) -> None:
    check_env([("CONFIG", '{"a": ' + "[" * depth + "]" * depth + "}")])
