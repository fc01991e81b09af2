"""The compiled client (``secretd/thin.c``) keeps its own copy of the protocol's fixed
values and of ``thin.py``'s rules; these are the ones in ``wire.py`` and ``thin.py``, so
that the two clients cannot drift apart unnoticed."""

from __future__ import annotations

import math
import re
import signal
from pathlib import Path

from secretd import thin, wire

SOURCE = (Path(thin.__file__).with_name("thin.c")).read_text()


def define(name: str) -> str:
    found = re.search(rf"^#define {name}\s+((?:.*\\\n)*.*)$", SOURCE, re.MULTILINE)
    assert found, f"no #define {name} in thin.c"
    return found.group(1).replace("\\\n", "").strip()


def test_the_protocol_values_are_wire_pys() -> None:
    assert define("VERSION") == f'"{wire.VERSION}"'
    factors = [int(n) for n in re.findall(r"\d+", define("MAX_FRAME"))]  # (1024 * 1024)
    assert math.prod(factors) == wire.MAX_FRAME
    assert define("SOCKET_NAME") == f'"{wire.SOCKET_NAME}"'
    assert define("SYSTEM_RUNTIME_DIR") == f'"{wire.SYSTEM_RUNTIME_DIR}"'


def test_the_rules_and_words_are_thin_pys() -> None:
    assert define("SYSTEM_CONFIG") == f'"{thin.SYSTEM_CONFIG}"'
    assert define("PROJECT_CONFIG") == f'"{thin.PROJECT_CONFIG}"'
    assert define("GONE") == f'"{thin.GONE.format(when="before the command ended")}"'
    for name in thin.OWN_SETTINGS:
        assert f'setting("{name}")' in SOURCE
    assert f'setenv("{thin.HANDED_BACK}", "1", 1)' in SOURCE


def test_the_relayed_signals_are_wire_pys() -> None:
    found = re.search(r"FORWARDED\[\] = \{([^}]*)\}", SOURCE)
    assert found
    names = [name.strip() for name in found.group(1).split(",")]
    relayed = [signal.Signals(signum).name for signum in wire.FORWARDED]
    assert names == [*relayed, "SIGWINCH"]
