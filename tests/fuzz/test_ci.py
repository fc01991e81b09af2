"""GitHub mask lines for any value: each line is one ``::add-mask::`` command whose data,
unescaped as the runner reads it, is a piece of the value; no raw line break or carriage
return can end a command early and let the rest of a value reach the log as text."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from secretd import ci

PIECES = st.sampled_from(["\n", "\r", "\r\n", "%", "%0A", "%25", " ", "{", "}", '"', "::", "a"])
TEXT = st.lists(PIECES | st.text(max_size=6), max_size=10).map("".join)
VALUES = TEXT.map(str.encode) | st.binary(max_size=40) | st.dictionaries(
    st.text(max_size=4), TEXT, max_size=3
).map(lambda d: json.dumps(d).encode())


def unescape(data: str) -> str:
    """The runner's reading of a command's data (``unescapeData``)."""
    return data.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")


@given(values=st.lists(VALUES, max_size=4))
def test_every_mask_line_is_one_command_holding_a_piece_of_a_value(values: list[bytes]) -> None:
    output = ci.mask_commands(values).decode()
    assert output == "" or output.endswith("\n")
    sources = [s for v in values for s in _strings(v)]
    for line in output.split("\n")[:-1]:
        assert line.startswith("::add-mask::") and "\r" not in line
        data = unescape(line.removeprefix("::add-mask::"))
        assert data.strip() and "\n" not in data
        assert any(data in source for source in sources)


def _strings(value: bytes) -> list[str]:
    """The value as text and, when it is JSON, every string inside it."""
    try:
        text = value.decode()
    except UnicodeDecodeError:
        return []
    found, stack = [text], []
    try:
        stack.append(json.loads(text))
    except ValueError:
        pass
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found
