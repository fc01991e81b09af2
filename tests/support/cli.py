"""What every refusal of the CLI must look like: one line on stderr, its own exit status."""

from __future__ import annotations

import subprocess


def refused(done: subprocess.CompletedProcess[str], code: int, *words: str) -> str:
    """Assert that ``done`` exited ``code`` with one line on stderr, starting
    ``secretd: `` and holding each of ``words``; that line."""
    assert done.returncode == code, (done.stdout, done.stderr)
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("secretd: "), done.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]
