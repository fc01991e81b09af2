"""Swarm version names and their order, without a swarm (runtime/swarm.py)."""

from __future__ import annotations

import hashlib

import pytest

from secretd.errors import UsageError
from secretd.runtime.swarm import _instant, versioned_name


def test_a_version_is_named_by_its_value() -> None:
    digest = hashlib.sha256(b"s3cret").hexdigest()[:12]
    assert versioned_name("db_pw", b"s3cret") == f"db_pw_{digest}"
    assert versioned_name("db_pw", b"s3cret2") != versioned_name("db_pw", b"s3cret")
    assert len(versioned_name("x" * 51, b"v")) == 64  # Swarm's longest name


@pytest.mark.parametrize("name", ["x" * 52, "bad name", "-x", ""])
def test_a_name_swarm_cannot_carry_is_a_usage_error(name: str) -> None:
    with pytest.raises(UsageError) as caught:
        versioned_name(name, b"value")
    assert "value" not in str(caught.value)


def test_creation_times_sort_as_times() -> None:
    """Go trims a fraction's trailing zeros: as text, the later one would come first."""
    earlier, later = "2026-12-01T02:08:47.3351942Z", "2026-12-01T02:08:47.33519425Z"
    assert sorted([later, earlier], key=_instant) == [earlier, later]
    assert sorted(["2026-12-01T02:08:48Z", earlier], key=_instant)[0] == earlier
