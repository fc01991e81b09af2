"""Random values, random surrounding bytes, random writes and idle flushes: no form of a
value of 8 bytes or more survives in what is shown between replacements, a stream with no
form in it comes out unchanged, and the writes' split never changes the output."""

from __future__ import annotations

import base64

from hypothesis import given
from hypothesis import strategies as st

from secretd.redact import MIN_LENGTH, Redactable, Redactor, forms, redact

MASK = b"[MASKED]"
VALUES = st.lists(st.binary(max_size=40), min_size=1, max_size=4)
# a piece of the stream: random bytes, or a form of the i-th value (also inside base64)
PIECES = st.lists(
    st.one_of(
        st.binary(max_size=30).map(lambda data: ("bytes", data, 0)),
        st.tuples(st.just("form"), st.integers(0, 3), st.integers(0, 50)),
        st.tuples(st.just("base64"), st.integers(0, 3), st.integers(0, 5)),
    ),
    max_size=12,
)
# how the stream is cut into writes; a negative step is an idle flush
STEPS = st.lists(st.one_of(st.integers(1, 3), st.integers(-1, 60).filter(bool)), max_size=40)


def _stream(values: list[bytes], pieces: list[tuple[str, object, int]]) -> bytes:
    out = bytearray()
    for kind, what, number in pieces:
        if kind == "bytes":
            assert isinstance(what, bytes)
            out += what
            continue
        assert isinstance(what, int)
        value = values[what % len(values)]
        if kind == "form":
            choices = sorted(forms(value)) or [value]
            out += choices[number % len(choices)]
        else:
            out += base64.b64encode(b"\x01\x02\x03\x04\x05"[:number] + value + b"=")
    return bytes(out)


def _feed(redactor: Redactor, data: bytes, steps: list[int]) -> bytes:
    out, pos = bytearray(), 0
    for step in steps:
        if step < 0:
            out += redactor.flush()
            continue
        out += redactor.write(data[pos : pos + step])
        pos += step
    out += redactor.write(data[pos:])
    return bytes(out + redactor.flush())


def _long_forms(values: list[bytes]) -> set[bytes]:
    return {form for value in values if len(value) >= MIN_LENGTH for form in forms(value)}


@given(VALUES, PIECES, STEPS)
def test_no_form_survives_any_split_or_flush(
    values: list[bytes], pieces: list[tuple[str, object, int]], steps: list[int]
) -> None:
    data = _stream(values, pieces)
    items = [Redactable(f"v{i}", value) for i, value in enumerate(values)]
    out = _feed(Redactor(items), data, steps)
    targets = _long_forms(values)
    for shown in out.split(MASK):
        for form in targets:
            assert form not in shown
    if not any(form in data for form in targets):
        assert out == data


@given(VALUES, PIECES, STEPS)
def test_the_split_of_writes_never_changes_the_output(
    values: list[bytes], pieces: list[tuple[str, object, int]], steps: list[int]
) -> None:
    data = _stream(values, pieces)
    items = [Redactable(f"v{i}", value) for i, value in enumerate(values)]
    redactor = Redactor(items)
    held_bound = max(redactor.longest - 1, 0)
    out, pos = bytearray(), 0
    for step in (abs(step) for step in steps):
        out += redactor.write(data[pos : pos + step])
        pos += step
        assert redactor.held <= held_bound
    out += redactor.write(data[pos:]) + redactor.flush()
    assert bytes(out) == redact(data, items)


@given(
    st.binary(min_size=MIN_LENGTH, max_size=24),
    st.integers(0, 2),
    st.binary(max_size=6),
    st.binary(max_size=6),
    st.data(),
)
def test_a_long_form_cut_in_two_anywhere_is_masked(
    value: bytes, rank: int, before: bytes, after: bytes, data: st.DataObject
) -> None:
    ranked = sorted(forms(value), key=len, reverse=True)  # the longest first: hex, base64
    form = ranked[rank % len(ranked)]
    text = before + form + after
    split = data.draw(st.integers(0, len(text)))
    redactor = Redactor([Redactable("v", value)])
    out = redactor.write(text[:split]) + redactor.write(text[split:]) + redactor.flush()
    assert out == redact(text, [Redactable("v", value)])
    assert MASK in out
