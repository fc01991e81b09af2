"""Any ``.env`` bytes through the ``dotenv:`` provider and the ``--env-file`` loader: each
parses or raises secretd's own error, never another exception; and no value carries a
variable of secretd's environment that the file did not name itself (``${VAULT_TOKEN}``
stays the file's business, python-dotenv's own expansion would copy the token)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from secretd.backends.dotenv import DotenvProvider, parse_dotenv
from secretd.cli.runenv import read_env
from secretd.errors import SecretdError, SecretNotFound
from secretd.refs import parse_ref

# secretd's environment while the file is read: credentials, and names a file may use.
ENVIRONMENT = {
    "VAULT_TOKEN": "hvs.fuzz-canary-vault",
    "SECRETD_PASSPHRASE": "fuzz-canary-passphrase",
    "HOME": "fuzz-canary-home",
    "A": "fuzz-canary-a",
}
# Pieces the two grammars give meaning to, and bytes that are not UTF-8, as lines that
# mostly look like ``KEY=VALUE`` and sometimes like nothing at all.
PIECES = st.sampled_from([
    b"A", b"B", b"VAULT_TOKEN", b"HOME", b"=", b"${", b"}", b":-", b"${A}", b"${B:-d}",
    b"${VAULT_TOKEN}", b"${SECRETD_PASSPHRASE:-x}", b"${HOME", b"$", b"'", b'"', b"\\",
    b"\\n", b"#", b"export ", b" ", b"\t", b"\n", b"\r", b"\0", b"\xff", b"\xc3",
    b"\xe2\x80\xa8", b"\x0b",
]) | st.binary(max_size=4)  # fmt: skip
KEYS = st.sampled_from([b"A", b"B", b"VAULT_TOKEN", b"HOME", b"export A", b" B", b"A B", b""])
VALUES = st.lists(PIECES, max_size=8).map(b"".join)
LINES = st.builds(b"%s=%s".__mod__, st.tuples(KEYS, VALUES)) | KEYS | VALUES
ENDINGS = st.sampled_from([b"\n", b"\r\n", b"\r", b""])
ANYTHING = st.lists(st.tuples(LINES, ENDINGS).map(b"".join), max_size=12).map(b"".join)
# Files python-dotenv parses, so that expansion is reached (one bad line refuses a file).
EXPANSIONS = st.sampled_from([
    b"${A}", b"${B}", b"${VAULT_TOKEN}", b"${SECRETD_PASSPHRASE:-x}", b"${HOME:-}", b"v", b"-",
])  # fmt: skip
QUOTES = st.sampled_from([b"%s", b"'%s'", b'"%s"'])
GOOD_VALUES = st.builds(bytes.__mod__, QUOTES, st.lists(EXPANSIONS, max_size=4).map(b"".join))
GOOD_KEYS = st.sampled_from([b"A", b"B", b"VAULT_TOKEN", b"HOME", b"export A"])
GOOD_LINES = st.builds(b"%s=%s\n".__mod__, st.tuples(GOOD_KEYS, GOOD_VALUES))
PARSEABLE = st.lists(GOOD_LINES, min_size=1, max_size=6).map(b"".join)
CONTENTS = PARSEABLE | ANYTHING | st.binary(max_size=300)


@contextmanager
def env_file(data: bytes) -> Iterator[Path]:
    """``data`` in a fresh file, with ``ENVIRONMENT`` set in secretd's environment."""
    saved = {key: os.environ.get(key) for key in ENVIRONMENT}
    os.environ.update(ENVIRONMENT)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / ".env"
            path.write_bytes(data)
            yield path
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def leaked(value: str, data: bytes) -> list[str]:
    """The environment values in ``value`` that the file's own bytes do not hold."""
    return [v for v in ENVIRONMENT.values() if v in value and v.encode() not in data]


@given(data=CONTENTS, key=st.sampled_from(["A", "B", "VAULT_TOKEN", "HOME"]))
def test_any_dotenv_file_parses_or_is_refused_and_never_expands_the_environment(
    data: bytes, key: str
) -> None:
    with env_file(data) as path:
        try:
            values = parse_dotenv(path, "x")
        except SecretdError:
            values = {}
        for value in values.values():
            assert not leaked(value, data)
        try:
            secret = DotenvProvider().get(parse_ref(f"x=dotenv:{path}#{key}"))
        except SecretNotFound:
            assert key not in values
        except SecretdError:
            assert not values
        else:
            assert secret.value == values[key].encode()


@given(data=CONTENTS)
def test_any_env_file_parses_or_is_refused_and_takes_only_the_names_it_lists(
    data: bytes,
) -> None:
    """Values are literal; a bare ``KEY`` line passes ``KEY`` on, as Docker's does."""
    with env_file(data) as path:
        try:
            pairs = [(v.name, v.value) for v in read_env((), (path,), {})]
        except SecretdError:
            return
        named = {line.strip() for line in data.decode().split("\n")}
        for key, value in pairs:
            if leaked(value, data):
                assert key in named and value == ENVIRONMENT[key]
