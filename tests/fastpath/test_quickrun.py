"""A plain ``secretd run`` read without click (``cli/quickrun.py``) and the same line read
by click print the same and end with the same status. A global option before ``run``
(``--log-level warning``, the default) makes click read it; neither has a daemon."""

from __future__ import annotations

import subprocess

import pytest

from .conftest import Fast

SH = ("sh", "-c")
CLICK = ("--log-level", "warning")
TABLE = [
    ("plain", ["--secret", "api_key", "--", *SH, "wc -c </run/secrets/api_key"]),
    ("dash-e", ["-e", "A=1", "-e", "HOME", "--", *SH, "echo $A $HOME"]),
    ("env", ["--env", "B=two words", "--", *SH, 'echo "$B"']),
    ("secret-options", ["--secret", "source=api_key,target=k.txt,mode=0400", "--no-redact", "--",
                        *SH, "cat /run/secrets/k.txt; stat -c %a /run/secrets/k.txt"]),
    ("redacted", ["--secret", "api_key", "--redact", "--", "cat", "/run/secrets/api_key"]),
    ("dashes", ["--", "printf", "%s|", "--", "-x", "-"]),
    ("value-dashes", ["--name", "--", "true"]),
    ("no-dashes-program", [*SH, "echo program"]),
    ("no-dashes-neither-2", ["no-such-thing-quickrun"]),
    ("warning", ["-e", "DB_PASSWORD=Zx9-kL2-mN8-qR4", "--", "true"]),
    ("bad-reference-2", ["--secret", "x=nope:thing", "--", "true"]),
    ("unknown-secret-125", ["--secret", "nosuch_quickrun", "--", "true"]),
    ("no-command-2", ["--secret", "api_key", "--"]),
    ("unknown-flag-2", ["--bogus", "--", "true"]),
    ("missing-value-2", ["--name"]),
    ("bad-number-2", ["--stop-timeout", "soon", "--", "true"]),
    ("cluster", ["-it", "--", "true"]),
    ("help", ["--help"]),
    ("exit-1", ["--", *SH, "echo out; echo err >&2; exit 1"]),
    ("not-runnable-126", ["--", "/etc/passwd"]),
    ("not-found-127", ["--", "no-such-command-quickrun"]),
]  # fmt: skip


def secretd(fast: Fast, *args: str) -> subprocess.CompletedProcess[str]:
    """``secretd ARGS`` by the full CLI, without a daemon (so in this process)."""
    return fast.full(*args, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize(("case", "args"), TABLE, ids=[row[0] for row in TABLE])
def test_the_fast_path_and_click_agree(fast: Fast, case: str, args: list[str]) -> None:
    quick = secretd(fast, "run", *args)
    slow = secretd(fast, *CLICK, "run", *args)
    # the hint for a missing -- repeats the command line as typed
    slow_err = slow.stderr.replace(f"secretd {' '.join(CLICK)} run", "secretd run")
    assert (quick.stdout, quick.stderr) == (slow.stdout, slow_err)
    assert quick.returncode == slow.returncode
    expected = int(case.rsplit("-", 1)[1]) if case[-1].isdigit() else 0
    assert quick.returncode == expected, quick.stderr
