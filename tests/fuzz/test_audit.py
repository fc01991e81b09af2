"""``secretd audit``'s parsers: any Dockerfile text, compose text or history line gives
pairs or secretd's own UsageError, never another exception; no finding holds a value."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from secretd.audit import Auditor, compose_pairs, dockerfile_pairs, history_pairs
from secretd.errors import UsageError

AUDITOR = Auditor(b"fuzz-key")
DOCKERFILE_PIECES = st.sampled_from(
    ["ENV ", "ARG ", "RUN ", "FROM x", "\\\n", "`\n", "# escape=`\n", "#c\n", "\n", "=", " ",
     '"', "'", "DB_PASSWORD", "A=b", "--flag=", "|1 ", "/bin/sh -c #(nop) "]
)  # fmt: skip
COMPOSE_PIECES = st.sampled_from(
    ["services:", "\n", "  ", "web:", "environment:", "build:", "args:", "- ", "A=b",
     "DB_PASSWORD: x", "<<: *a", "&a ", "*a", "[", "]", "{", "}", ":", "null", "---\n", "!!binary"]
)  # fmt: skip


def joined(pieces: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.lists(pieces | st.text(max_size=5), max_size=30).map("".join)


@given(joined(DOCKERFILE_PIECES))
def test_any_dockerfile_or_history_line_gives_pairs(text: str) -> None:
    for pair in [*dockerfile_pairs(text), *history_pairs(text, "history step 1/1")]:
        assert isinstance(pair.name, str) and isinstance(pair.value, str)
    list(AUDITOR.findings("dockerfile", "Dockerfile", dockerfile_pairs(text)))


@given(joined(COMPOSE_PIECES) | st.text())
def test_any_compose_text_gives_pairs_or_a_usage_error(text: str) -> None:
    try:
        pairs = list(compose_pairs(text, Path("compose.yml")))
    except UsageError:
        return
    for finding in AUDITOR.findings("compose", "compose.yml", pairs):
        assert finding.line is None or finding.line >= 1


def test_deep_nesting_is_a_usage_error() -> None:
    try:
        list(compose_pairs("[" * 100_000, Path("compose.yml")))
    except UsageError as exc:
        assert "compose.yml" in str(exc)
