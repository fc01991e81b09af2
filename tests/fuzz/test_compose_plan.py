"""A compose model's secrets and configs (compose's JSON, any shape it could take): the
plan either maps it or gives secretd's own UsageError, and every file lands at a clean
absolute path (secrets below /run/secrets unless absolute), with permission bits only."""

from __future__ import annotations

import posixpath
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from secretd.compose.plan import make_plan
from secretd.errors import UsageError
from secretd.refs import Binding

NAMES = st.sampled_from(["db", "api", "tok", "conf", "a.b", "x-y", "", "..", "a/b", "é"])
PIECES = st.sampled_from(["/", "..", ".", "a", "run", "secrets", "\0", " ", "0400", "etc"])
PATH = st.lists(PIECES | st.text(max_size=4), max_size=6).map("".join)
SCALAR = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=8) | PATH
MODE = st.sampled_from(["0400", "0440", "0o440", "288", "04755", "0999", "rw", "-1", ""]) | SCALAR
VALUE = st.recursive(SCALAR, lambda inner: st.lists(inner, max_size=3), max_leaves=4)

TOP = st.fixed_dictionaries(
    {},
    optional={
        "file": PATH,
        "environment": st.sampled_from(["API_KEY", "UNSET", ""]) | SCALAR,
        "content": SCALAR,
        "external": st.booleans() | SCALAR,
        "name": NAMES | SCALAR,
        "x-secretd": st.fixed_dictionaries({}, optional={"source": st.text(max_size=12)})
        | VALUE,
        "driver": SCALAR,
        "labels": st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2),
    },
)
ENTRY = NAMES | st.fixed_dictionaries(
    {"source": NAMES},
    optional={"target": PATH, "uid": SCALAR, "gid": SCALAR, "mode": MODE},
)
SERVICE = st.fixed_dictionaries(
    {}, optional={"secrets": st.lists(ENTRY, max_size=4), "configs": st.lists(ENTRY, max_size=3)}
)
MODEL = st.fixed_dictionaries(
    {"name": st.just("proj")},
    optional={
        "secrets": st.dictionaries(NAMES, TOP, max_size=4),
        "configs": st.dictionaries(NAMES, TOP, max_size=3),
        "services": st.dictionaries(st.sampled_from(["web", "worker"]), SERVICE, max_size=2),
    },
)
BINDINGS = {"secret": {"tok": Binding(source="local:tok")}, "config": {}}


@given(MODEL)
def test_a_model_maps_or_is_a_usage_error(model: dict[str, Any]) -> None:
    try:
        plan = make_plan(model, BINDINGS, {"API_KEY": "v"})
    except UsageError:
        return
    for service, uses in plan.services.items():
        targets = [use.target for use in uses]
        assert len(set(targets)) == len(targets), service
        for use in uses:
            assert use.target.startswith("/") and "\0" not in use.target
            assert posixpath.normpath(use.target) == use.target.rstrip("/") or use.target == "/"
            assert ".." not in use.target.split("/")
            assert 0 <= use.mode <= 0o777 and use.uid >= 0 and use.gid >= 0
            ref = use.ref()
            if not ref.target.startswith("/"):
                assert use.target == posixpath.join("/run/secrets", ref.target)
