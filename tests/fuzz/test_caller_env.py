"""The daemon's binding of a forwarded run's ``--secret`` texts with the caller's
environment (``caller_run.bind_all``): any texts over any environment bind or raise
secretd's own error; what is read from the caller's environment is an ``env:`` source
without ``?file``, and nothing else is."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from secretd.caller_run import bind_all
from secretd.config import Config
from secretd.errors import SecretdError
from secretd.refs import Binding, split_locator

from .test_refs import ENVIRON, MANY, REFERENCE

# The daemon's own bindings: one to its environment, one to its store.
CONFIG = Config(
    state_dir=Path("/nonexistent"),
    runtime_dir=Path("/nonexistent"),
    secrets={"own": Binding(source="env:DAEMON_VAR"), "api": Binding(source="local:api")},
)
NAMES = st.sampled_from(["own", "api", "other"])
TEXTS = st.lists(MANY | NAMES, max_size=3) | st.lists(MANY | REFERENCE | NAMES, max_size=4)


@given(texts=TEXTS, environ=ENVIRON)
def test_a_forwarded_runs_secrets_bind_or_are_refused(
    texts: list[str], environ: dict[str, str]
) -> None:
    try:
        bound = bind_all(texts, CONFIG, environ)
    except SecretdError:
        return
    for item in bound:
        query = split_locator(item.ref.locator).query
        if item.caller:
            assert item.ref.scheme == "env" and item.key is None and "file" not in query
        else:
            assert item.ref.scheme != "env" or item.key == "own"
    assert not (any(b.caller for b in bound) and any(b.key == "own" for b in bound))


@given(texts=TEXTS)
def test_a_run_request_brings_no_environment_to_read(texts: list[str]) -> None:
    try:
        bound = bind_all(texts, CONFIG)
    except SecretdError:
        return
    assert not any(b.caller for b in bound)
    assert all(b.ref.scheme != "env" or b.key == "own" for b in bound)
