"""``--config`` and ``--template`` references, and where files land in the tmpfs: any text
parses or gives secretd's UsageError; a config's target is a clean absolute path; a file
never lands outside its tmpfs area, and under the same name whichever set it comes in."""

from __future__ import annotations

import posixpath

from hypothesis import given
from hypothesis import strategies as st

from secretd.errors import UsageError
from secretd.mount.tmpfs import ABSOLUTE, CONFIGS, SECRETS, layout
from secretd.refs import parse_ref, parse_template
from secretd.spec import SecretFile
from tests.fuzz.test_refs import BINDINGS, REFERENCE, assert_contained

ELEMENT = st.sampled_from(["etc", "app", "a.conf", "run", "secrets", "x", "conf.d"])
ABSOLUTE_TARGET = st.lists(ELEMENT, min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts))


@given(text=REFERENCE, bindings=BINDINGS)
def test_any_config_reference_parses_to_an_absolute_target_or_is_a_usage_error(
    text: str, bindings: dict
) -> None:
    try:
        ref = parse_ref(text, bindings, "config")
    except UsageError:
        return
    assert ref.kind == "config" and ref.target.startswith("/")
    assert_contained(ref)


@given(text=REFERENCE, bindings=BINDINGS)
def test_any_template_reference_parses_or_is_a_usage_error(text: str, bindings: dict) -> None:
    try:
        template = parse_template(text, bindings)
    except UsageError:
        return
    assert template.target.startswith("/")
    assert posixpath.normpath(template.target) == template.target


@given(
    files=st.lists(
        st.tuples(ABSOLUTE_TARGET, st.booleans()), min_size=1, max_size=6, unique_by=lambda f: f[0]
    ),
    pick=st.integers(0, 5),
)
def test_files_stay_in_their_area_under_one_name_in_any_subset(
    files: list[tuple[str, bool]], pick: int
) -> None:
    secrets = [SecretFile(target, b"v", config=config) for target, config in files]
    placed = layout(secrets)
    for file in placed.files:
        parts = file.target.split("/")
        assert parts[0] in (ABSOLUTE, CONFIGS, SECRETS) and ".." not in parts
        assert file.config == (parts[0] == CONFIGS)
    chosen = secrets[pick % len(secrets)]
    if not chosen.config:  # an update replaces a secret's files: same place, whatever else
        alone = layout([chosen]).files[0].target
        assert alone == placed.files[pick % len(secrets)].target
