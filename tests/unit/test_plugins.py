"""secretd's own providers and runtimes are declared twice: keep the two in step."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from secretd import plugins
from secretd.errors import UsageError

PYPROJECT = Path(__file__).parents[2] / "pyproject.toml"


@pytest.mark.parametrize("group", sorted(plugins.BUILTIN))
def test_builtin_table_matches_entry_points(group: str) -> None:
    declared = tomllib.loads(PYPROJECT.read_text())["project"]["entry-points"][group]
    assert dict(plugins.BUILTIN[group]) == declared


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(UsageError) as info:
        plugins.load("secretd.providers", "nope", "provider")
    assert info.value.line().startswith("unknown provider 'nope': known providers: aws, dotenv")
