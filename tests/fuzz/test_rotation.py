"""Rotation's flags and durations: any text gives a value secretd can use or its own
UsageError, never another exception; a refresh that parses is never under one second."""

from __future__ import annotations

import signal

from hypothesis import example, given
from hypothesis import strategies as st

from secretd.errors import UsageError
from secretd.refs import MIN_REFRESH, parse_ref, parse_refresh
from secretd.rotation import parse_on_change, parse_signal

PIECES = st.sampled_from(
    ["0", "1", "9", ".", "5", "ms", "s", "m", "h", "e3", "-", "+", " ", "\n", "nan", "inf", "_"]
)
DURATION = st.lists(PIECES | st.text(max_size=4), max_size=6).map("".join)
ACTION = st.builds(
    "{}{}".format,
    st.sampled_from(["", "none", "restart", "signal:", "exec:", "signal", "SIGNAL:", "exec"]),
    st.text(max_size=10) | st.sampled_from(["HUP", "SIGUSR1", "9", "0", "65", "KILL ", ""]),
)


@given(DURATION | st.integers() | st.floats())
@example("\u0663s")  # ARABIC-INDIC DIGIT THREE: a digit to \\d, not a duration
def test_a_refresh_parses_to_a_second_or_more_or_is_a_usage_error(value: object) -> None:
    try:
        seconds = parse_refresh(value, "--refresh")  # type: ignore[arg-type]
    except UsageError:
        return
    assert seconds >= MIN_REFRESH
    assert not isinstance(value, str) or value.isascii()  # no other script's digits


@given(DURATION)
def test_refresh_in_the_long_syntax(text: str) -> None:
    try:
        ref = parse_ref(f"source=api_key,refresh={text}")
    except UsageError:
        return
    assert ref.refresh is not None and ref.refresh >= MIN_REFRESH


@given(ACTION)
def test_on_change_is_an_action_or_a_usage_error(text: str) -> None:
    try:
        action = parse_on_change(text)
    except UsageError:
        return
    assert action.action in ("none", "signal", "restart", "exec")
    if action.action == "signal":
        assert isinstance(action.signum, signal.Signals)
    if action.action == "exec":
        assert action.command and action.command.strip()


@given(st.text(max_size=12))
def test_a_stop_signal_is_a_signal_or_a_usage_error(text: str) -> None:
    try:
        assert isinstance(parse_signal(text, "--stop-signal"), signal.Signals)
    except UsageError:
        pass
