"""The reference grammar and ``[secrets.X]`` tables: any text, any TOML value either parses
or gives secretd's own UsageError, and a parsed target never leaves the secrets directory."""

from __future__ import annotations

import json
import posixpath
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from secretd.config import load_config
from secretd.errors import UsageError
from secretd.refs import NAME_RE, Binding, parse_ref, parse_refs, split_locator, target_path
from secretd.spec import SecretRef

SECRETS_DIR = "/run/secrets"
SCHEMES = ("local", "env", "dotenv", "file", "vault", "aws", "ssm", "Bad", "")
# Pieces the grammar gives meaning to, mixed with anything at all.
PIECES = st.sampled_from(
    ["/", "..", ".", "=", ",", "#", "?", ":", "&", "\0", "\n", " ", "%2e", "..a", "a", "0400"]
)
TEXT = st.lists(PIECES | st.text(max_size=6), max_size=8).map("".join)
URI = st.builds("{}:{}".format, st.sampled_from(SCHEMES), TEXT)
FIELD = st.sampled_from(["source", "src", "target", "uid", "gid", "mode", "name", " target"])
LONG = st.lists(st.builds("{}={}".format, FIELD, TEXT | URI), min_size=1, max_size=5).map(",".join)
REFERENCE = st.one_of(
    st.text(),
    TEXT,
    URI,
    LONG,
    st.builds("{}={}".format, TEXT, URI | TEXT),
)
BINDINGS = st.dictionaries(
    TEXT,
    st.builds(
        Binding,
        source=URI | TEXT,
        target=st.none() | TEXT,
        uid=st.none() | st.integers(0, 2**32),
        gid=st.none() | st.integers(0, 2**32),
        mode=st.none() | st.integers(0, 0o777),
    ),
    max_size=3,
)


def assert_contained(ref: SecretRef) -> None:
    """The target is a clean path: inside the secrets directory unless it is absolute."""
    target = ref.target
    assert target and "\0" not in target
    elements = target.removeprefix("/").split("/")
    assert all(elements) and not {".", ".."} & set(elements), target
    path = target_path(ref, SECRETS_DIR)
    assert posixpath.normpath(path) == path, path
    if not target.startswith("/"):
        assert path.startswith(SECRETS_DIR + "/"), path
    assert 0 <= ref.mode <= 0o777
    assert NAME_RE.fullmatch(ref.name) and ref.name.isprintable(), ref.name


def parses_or_refuses(text: str, bindings: dict[str, Binding] | None = None) -> None:
    try:
        ref = parse_ref(text, bindings)
    except UsageError as exc:
        assert exc.exit_code == 2
        return
    assert_contained(ref)


@given(text=REFERENCE)
def test_any_reference_parses_or_is_a_usage_error(text: str) -> None:
    parses_or_refuses(text)


@given(text=REFERENCE, bindings=BINDINGS)
def test_bound_names_keep_their_targets_inside(text: str, bindings: dict[str, Binding]) -> None:
    parses_or_refuses(text, bindings)
    for name in bindings:
        parses_or_refuses(name, bindings)


@given(texts=st.lists(REFERENCE, max_size=4))
def test_any_list_of_references_parses_or_is_a_usage_error(texts: list[str]) -> None:
    try:
        refs = parse_refs(texts, secrets_dir=SECRETS_DIR)
    except UsageError:
        return
    for ref in refs:
        assert_contained(ref)
    paths = [target_path(ref, SECRETS_DIR) for ref in refs]
    assert len(set(paths)) == len(paths)


@given(locator=st.text() | TEXT)
def test_any_locator_splits(locator: str) -> None:
    split_locator(locator)


# TOML values written as TOML: JSON's string escapes are TOML's (without surrogates).
SCALAR = (
    st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=12)
    | TEXT.filter(lambda text: not any(0xD800 <= ord(c) <= 0xDFFF for c in text))
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.booleans()
)
VALUE = st.recursive(
    SCALAR,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
ENTRY = st.fixed_dictionaries(
    {},
    optional={
        "source": URI | SCALAR | VALUE,
        "target": TEXT | VALUE,
        "uid": SCALAR,
        "gid": SCALAR,
        "mode": SCALAR | TEXT,
    },
)
NAME = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=10) | TEXT.filter(
    lambda text: not any(0xD800 <= ord(c) <= 0xDFFF for c in text)
)


def toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(toml(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml(str(k))} = {toml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    return repr(value)


@given(tables=st.dictionaries(NAME, ENTRY | VALUE, min_size=1, max_size=3))
def test_any_secrets_table_loads_or_is_a_usage_error(tables: dict[str, Any]) -> None:
    text = "[secrets]\n" + "".join(f"{toml(k)} = {toml(v)}\n" for k, v in tables.items())
    with tempfile.TemporaryDirectory() as directory:
        project = Path(directory)
        (project / "secretd.toml").write_text(text)
        try:
            config = load_config(environ={"XDG_CONFIG_HOME": directory}, cwd=project)
        except UsageError as exc:
            assert exc.exit_code == 2 and "\n" not in exc.line()
            return
    for name in config.secrets:
        parses_or_refuses(name, dict(config.secrets))
