"""Hypothesis profiles: a bounded run inside ``make test``, a long one for ``make fuzz``.

Every test in this folder is marked ``fuzz``. Each asserts that any input either parses or
raises secretd's own usage error, never another exception, and never touches a path outside
the directory it was given. ``make fuzz`` gives each test 3,000 examples;
``FUZZ_EXAMPLES=20000 make fuzz`` goes further.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)  # fmt: skip
settings.register_profile(
    "fuzz", max_examples=int(os.environ.get("FUZZ_EXAMPLES", "3000")), deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)  # fmt: skip
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/fuzz/" in str(item.fspath):
            item.add_marker(pytest.mark.fuzz)
