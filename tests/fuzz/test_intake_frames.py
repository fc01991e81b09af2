"""The daemon's intake reads every request without blocking, in whatever pieces the
client's bytes arrive: any bytes, cut anywhere, give what the blocking reader gives for
them in one piece (the same message, or the same ProtocolError), never another exception."""

from __future__ import annotations

import json
import socket
from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from secretd import protocol


def blocking(data: bytes) -> object:
    """What ``Channel.receive`` makes of ``data`` followed by the end of the stream."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.sendall(data)
        theirs.shutdown(socket.SHUT_WR)
        try:
            return protocol.Channel(ours).receive(timeout=5, max_fds=protocol.MAX_FDS)[0]
        except protocol.ProtocolError as exc:
            return str(exc)


def in_pieces(data: bytes, cuts: list[int]) -> object:
    """What one ``Frame`` makes of ``data`` cut at ``cuts``, the pieces sent one by one
    to a non-blocking socket, then the end of the stream."""
    edges = [0, *sorted(cut for cut in cuts if cut < len(data)), len(data)]
    pieces = [data[a:b] for a, b in pairwise(edges) if b > a]
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    frame = protocol.Frame(max_fds=protocol.MAX_FDS)
    with ours, theirs:
        for piece in [*pieces, None]:
            if piece is None:
                theirs.shutdown(socket.SHUT_WR)  # from here on, reading never blocks
            else:
                theirs.sendall(piece)
            try:
                while (message := frame.read(ours)) is None:
                    pass
            except BlockingIOError:
                continue
            except protocol.ProtocolError as exc:
                return str(exc)
            return message
    raise AssertionError("the end of the stream gave no outcome")


@given(data=st.binary(max_size=512), cuts=st.lists(st.integers(0, 512), max_size=5))
def test_any_bytes_in_any_pieces_read_as_in_one(data: bytes, cuts: list[int]) -> None:
    assert in_pieces(data, cuts) == blocking(data)


@given(
    message=st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=4),
    cuts=st.lists(st.integers(0, 200), max_size=5),
)
def test_a_valid_frame_in_any_pieces_is_its_message(
    message: dict[str, str], cuts: list[int]
) -> None:
    payload = json.dumps(message).encode()
    assert in_pieces(protocol.HEADER.pack(len(payload)) + payload, cuts) == message
