"""Any compose-shaped model through ``runtime.stack.stack_model``: a model for ``docker
stack deploy`` or secretd's own usage error, never another exception. The result is JSON,
has no key whose value is ``null`` outside a service's ``networks:``, no mode as text, and
no top-level secret but the versions it was given (so no ``file:`` path or variable of a
secret)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from secretd.errors import UsageError
from secretd.runtime.stack import stack_model
from tests.fuzz.strategies import json_like

SCALARS = st.none() | st.booleans() | st.integers(-5, 5000) | st.text(max_size=6)
VALUES = json_like(SCALARS, 3, st.text(max_size=4), max_leaves=8)
MODES = st.sampled_from(
    ["0400", "0o440", "0444", "400", "0999", "", "-1", "7777", "x"]
) | st.integers(-1, 0o7777)
USES = st.lists(
    st.text(max_size=4)
    | st.fixed_dictionaries(
        {"source": st.text(max_size=4)}, optional={"mode": MODES, "uid": SCALARS}
    ),
    max_size=3,
)
SERVICES = st.dictionaries(
    st.text(max_size=4),
    st.fixed_dictionaries(
        {"image": st.text(max_size=4)},
        optional={
            "secrets": USES,
            "configs": USES,
            "networks": VALUES,
            "entrypoint": VALUES,
            "x": VALUES,
        },
    ),
    max_size=3,
)
MODELS = st.fixed_dictionaries(
    {"services": SERVICES},
    optional={
        "name": st.text(max_size=4),
        "secrets": st.dictionaries(st.text(max_size=4), VALUES, max_size=3),
        "configs": st.dictionaries(st.text(max_size=4), VALUES, max_size=3),
        "networks": VALUES,
        "version": VALUES,
    },
)


def _nulls(value: Any) -> bool:
    """Whether a key anywhere in ``value`` has a ``null`` value."""
    if isinstance(value, dict):
        return any(v is None or _nulls(v) for v in value.values())
    if isinstance(value, list):
        return any(_nulls(v) for v in value)
    return False


@given(MODELS, st.dictionaries(st.text(max_size=4), st.text(min_size=1, max_size=8), max_size=3))
def test_any_model_becomes_a_stack_model_or_a_usage_error(
    model: dict[str, Any], versions: dict[str, str]
) -> None:
    try:
        out = stack_model(model, versions)
    except UsageError:
        return
    json.dumps(out)
    assert out["version"] == "3.9" and "name" not in out
    assert out.get("secrets", {}) == {
        key: {"name": n, "external": True} for key, n in versions.items()
    }
    for service in out["services"].values():
        assert not _nulls({k: v for k, v in service.items() if k != "networks"})
        for section in ("secrets", "configs"):
            for item in service.get(section) or []:
                assert not isinstance(item, dict) or not isinstance(item.get("mode", 0), str)
