"""Strategies several fuzz tests share."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st


def json_like(
    leaves: st.SearchStrategy[Any], width: int, keys: st.SearchStrategy[str], max_leaves: int
) -> st.SearchStrategy[Any]:
    """``leaves`` nested in lists and objects (keys from ``keys``) of up to ``width``
    items: what ``json.loads`` could hand a parser, for the parsers that take decoded
    JSON (or YAML) from a file, a server or the socket."""

    def nest(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return st.lists(inner, max_size=width) | st.dictionaries(keys, inner, max_size=width)

    return st.recursive(leaves, nest, max_leaves=max_leaves)
