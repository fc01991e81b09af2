"""The access log's readers and max_reads=: any file content, any ``--since`` text, any
``max_reads`` value either works or gives secretd's own UsageError."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from secretd import accesslog
from secretd.cli.audit import _line, _since
from secretd.errors import UsageError
from secretd.refs import parse_ref
from tests.fuzz.strategies import json_like


@given(st.binary(max_size=2000))
def test_any_log_content_reads_without_error(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as name:
        state = Path(name)
        (state / "access.log").write_bytes(content)
        (state / "access.log.1").write_bytes(content[::-1])
        for event in accesslog.read(state, since=0.0, secret="api_key"):
            assert isinstance(event, dict)
            _line(event)


@given(st.text(max_size=40))
def test_any_since_is_a_time_or_a_usage_error(text: str) -> None:
    try:
        assert isinstance(_since(text), float | int)
    except UsageError as exc:
        assert exc.exit_code == 2


@given(st.text(max_size=20))
def test_any_max_reads_parses_to_one_or_more_or_is_a_usage_error(value: str) -> None:
    try:
        ref = parse_ref(f"source=file:/v,target=k,max_reads={value}", {})
    except UsageError:
        return
    assert ref.max_reads is not None and ref.max_reads >= 1


JSON = json_like(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    3,
    st.text(max_size=8),
    max_leaves=10,
)
EVENT = st.dictionaries(
    st.sampled_from(["time", "event", "secret", "secrets", "file", "pid", "x"]), JSON, max_size=6
)


@given(st.lists(EVENT | JSON, max_size=5))
def test_any_json_lines_read_and_print(lines: list[object]) -> None:
    import json

    with tempfile.TemporaryDirectory() as name:
        state = Path(name)
        (state / "access.log").write_text("".join(json.dumps(line) + "\n" for line in lines))
        for secret in (None, "api_key"):
            for event in accesslog.read(state, since=1.0, secret=secret):
                _line(event)
