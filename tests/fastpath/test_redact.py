"""``--redact``'s default through the thin client is the full CLI's: the daemon parses the
command line with the caller's environment, but the terminal test is made on the stdout
the command gets, the caller's, not the daemon's."""

from __future__ import annotations

import sys

import pytest

from tests.support.terminal import on_a_terminal

from .conftest import VALUE, Fast

pytestmark = pytest.mark.root

ARGS = ("run", "--secret", "api_key", "--", "cat", "/run/secrets/api_key")


@pytest.mark.parametrize("by", ["thin", "full"])
def test_the_default_follows_the_callers_stdout_and_environment(fast: Fast, by: str) -> None:
    run = fast.thin if by == "thin" else fast.full
    assert run(*ARGS).stdout == "[MASKED]"  # a pipe
    assert run(*ARGS, extra_env={"SECRETD_REDACT": "false"}).stdout == VALUE
    assert run(*ARGS, extra_env={"CI": "true"}).stdout == "[MASKED]"
    argv, env = (
        ([str(fast.launcher)], fast.env())
        if by == "thin"
        else ([sys.executable, "-m", "secretd"], fast.env(False))
    )
    _, on_tty = on_a_terminal([*argv, *ARGS], env, str(fast.root / "work"))
    assert VALUE.encode() in on_tty, on_tty  # a terminal, no CI: not masked
