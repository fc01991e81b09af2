"""Container names (``run -d --name``) are claimed whole: no newline, no path, bounded."""

from __future__ import annotations

from pathlib import Path

import pytest

from secretd.errors import UsageError
from secretd.runtime.oci.state import NAMES, claim_name


@pytest.mark.parametrize("name", ["web\n", "web\nother", "../web", "a/b", "", "-web", "w" * 129])
def test_a_name_that_is_not_one_clean_word_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(UsageError, match="invalid container name"):
        claim_name(tmp_path, name, "c0ffee")
    assert not (tmp_path / NAMES).exists() or list((tmp_path / NAMES).iterdir()) == []


def test_a_clean_name_is_claimed_once(tmp_path: Path) -> None:
    claim_name(tmp_path, "web.1_a-b", "c0ffee")
    assert (tmp_path / NAMES / "web.1_a-b").readlink() == Path("c0ffee")
    with pytest.raises(UsageError, match="already in use by container c0ffee"):
        claim_name(tmp_path, "web.1_a-b", "beef")
