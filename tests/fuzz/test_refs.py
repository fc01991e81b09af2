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
from secretd.errors import SecretNotFound, UsageError
from secretd.refs import (
    NAME_RE,
    VARIABLE_RE,
    Binding,
    expand,
    parse_ref,
    parse_refs,
    split_locator,
    target_path,
)
from secretd.spec import SecretRef

SECRETS_DIR = "/run/secrets"
SCHEMES = ("local", "env", "dotenv", "file", "vault", "aws", "ssm", "Bad", "")
# Pieces the grammar gives meaning to, mixed with anything at all.
PIECES = st.sampled_from(
    ["/", "..", ".", "=", ",", "#", "?", ":", "&", "\0", "\n", " ", "%2e", "..a", "a", "0400"]
)
TEXT = st.lists(PIECES | st.text(max_size=6), max_size=8).map("".join)
URI = st.builds("{}:{}".format, st.sampled_from(SCHEMES), TEXT)
FIELD = st.sampled_from(
    ["source", "src", "target", "uid", "gid", "mode", "name", " target", "file_env", "redact"]
)
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


def assert_variable(ref: SecretRef) -> None:
    assert ref.file_env is None or VARIABLE_RE.fullmatch(ref.file_env), ref.file_env


def parses_or_refuses(text: str, bindings: dict[str, Binding] | None = None) -> None:
    try:
        ref = parse_ref(text, bindings)
    except UsageError as exc:
        assert exc.exit_code == 2
        return
    assert_contained(ref)
    assert_variable(ref)


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
        "file_env": SCALAR | TEXT,
        "redact": SCALAR,
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


# Many at once: env: patterns over any environment, with ?file, names, targets, long syntax.
VARIABLE = st.text(alphabet="AB_*1a.-/?#=", min_size=1, max_size=6)
ENVIRON = st.dictionaries(VARIABLE.filter(lambda v: "*" not in v), st.text(max_size=4), max_size=6)
PATTERN = st.builds(
    "{}{}".format, VARIABLE | TEXT, st.sampled_from(["", "?file", "?x", "#k", "?file=1"])
)
MANY = st.one_of(
    st.builds("env:{}".format, PATTERN),
    st.builds("n=env:{}".format, PATTERN),
    st.builds("source=env:{},{}".format, PATTERN, st.sampled_from(
        ["mode=0400", "target=t", "file_env=F", "redact=false", "redact=no", "uid=1"]
    )),
    st.builds("c=dotenv:{}#{}".format, TEXT, st.sampled_from(["*", "A*", "*_X", "**"])),
)  # fmt: skip


@given(texts=st.lists(MANY | REFERENCE, max_size=3), environ=ENVIRON)
def test_patterns_expand_to_named_contained_references_or_an_error(
    texts: list[str], environ: dict[str, str]
) -> None:
    try:
        refs = parse_refs(texts, secrets_dir=SECRETS_DIR, environ=environ)
    except SecretNotFound as exc:
        assert "matches" in exc.line()
        return
    except UsageError:
        return
    for ref in refs:
        assert_contained(ref)
        assert_variable(ref)


@given(text=MANY, environ=ENVIRON)
def test_an_unnamed_pattern_is_one_reference_per_matching_variable(
    text: str, environ: dict[str, str]
) -> None:
    try:
        refs = expand(text, environ=environ)
    except (UsageError, SecretNotFound):
        return
    if text.startswith("env:") and "*" in split_locator(text[4:]).path:
        assert [ref.name for ref in refs] == sorted(ref.name for ref in refs)
        assert {ref.name for ref in refs} <= set(environ)
        assert all("*" not in ref.source for ref in refs)


DOTENV_LINE = st.builds(
    "{}={}".format,
    st.text(alphabet="AB_/.*' \"#=x", min_size=1, max_size=6) | TEXT,
    st.text(max_size=5),
)


@given(
    lines=st.lists(DOTENV_LINE | TEXT, max_size=5),
    pattern=st.sampled_from(["*", "A*", "*B", "A*B", "x"]),
)
def test_a_dotenv_tree_has_file_names_inside_its_directory_or_is_refused(
    lines: list[str], pattern: str
) -> None:
    from secretd.backends.dotenv import DotenvProvider

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "ci.env"
        path.write_text("\n".join(lines), encoding="utf-8", errors="surrogatepass")
        ref = parse_ref(f"c=dotenv:{path}#{pattern}")
        try:
            secret = DotenvProvider().get(ref)
        except (UsageError, SecretNotFound):
            return
    if "*" not in pattern:
        assert secret.tree is None
        return
    assert secret.tree
    for key in secret.tree:
        joined = posixpath.join(SECRETS_DIR, "c", key)
        assert posixpath.normpath(joined) == joined and posixpath.dirname(joined).endswith("/c")
