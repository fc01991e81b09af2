"""The daemon's wire: any bytes on the socket and any JSON in a run request either decode
or give secretd's own error (ProtocolError, UsageError), never another exception."""

from __future__ import annotations

import dataclasses
import json
import socket
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from secretd import protocol
from secretd.errors import UsageError
from secretd.spec import RunSpec, SecretRef
from tests.fuzz.strategies import json_like

JSON = json_like(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    4,
    st.text(),
    max_leaves=12,
)
FIELDS = [f.name for f in dataclasses.fields(RunSpec)]
TEXT = st.text(alphabet=st.characters(blacklist_characters="\0"), max_size=8)
PAIRS = st.lists(st.tuples(TEXT, TEXT).map(tuple), max_size=3).map(tuple)
REFS = st.builds(
    SecretRef, TEXT, TEXT, TEXT, st.none() | st.integers(0, 2**32), st.none() | st.integers()
)


def decodes_or_refuses(data: Any) -> RunSpec | None:
    try:
        return RunSpec.from_json(data)
    except UsageError as exc:
        assert "\n" not in exc.line()
        return None


@pytest.mark.parametrize("field", FIELDS)
@given(value=JSON)
def test_any_json_in_any_field_decodes_or_is_a_usage_error(field: str, value: Any) -> None:
    spec = decodes_or_refuses({field: value})
    if spec is not None:  # what was accepted has exactly the annotated shape
        assert RunSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec


@given(data=JSON)
def test_any_json_as_a_whole_spec_decodes_or_is_a_usage_error(data: Any) -> None:
    decodes_or_refuses(data)


@given(
    spec=st.builds(
        RunSpec,
        command=st.lists(TEXT, max_size=4).map(tuple),
        secrets=st.lists(REFS, max_size=2).map(tuple),
        env=PAIRS,
        labels=PAIRS,
        name=st.none() | TEXT,
        detach=st.booleans(),
    )
)
def test_every_spec_survives_the_wire(spec: RunSpec) -> None:
    assert RunSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec


@given(frame=st.binary(max_size=2048))
def test_any_bytes_are_one_message_or_a_protocol_error(frame: bytes) -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.sendall(frame)
        theirs.shutdown(socket.SHUT_WR)
        try:
            message, fds = protocol.Channel(ours).receive(timeout=5, max_fds=protocol.MAX_FDS)
        except protocol.ProtocolError:
            return
    assert isinstance(message, dict) and fds == []


@given(payload=st.binary(max_size=512) | JSON.map(lambda v: json.dumps(v).encode()))
def test_a_whole_frame_of_anything_is_one_message_or_a_protocol_error(payload: bytes) -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.sendall(protocol.HEADER.pack(len(payload)) + payload)
        try:
            message, _ = protocol.Channel(ours).receive(timeout=5)
        except protocol.ProtocolError:
            return
    assert isinstance(message, dict)
