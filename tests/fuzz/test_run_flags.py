"""``secretd run``'s fast parser (``cli/quickrun.py``) against click's command built from
the same table (``cli/run.py``): on any command line drawn from the option names, values
and junk, whenever the fast parser accepts, it gives exactly click's parameters (values,
defaults, types) and the same answer to "was there a bare ``--`` before the command"."""

from __future__ import annotations

import os
from typing import Any

import click
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from secretd.cli.quickrun import parse
from secretd.cli.run import run as command
from secretd.cli.run_flags import FLAGS

NAMES = sorted({name for flag in FLAGS for name in (*flag.names, flag.off) if name})
VALUES = (
    st.sampled_from(
        ["x", "", "--", "-", "-e", "1.5", "nan", "1e3", "x1", "fuse", "tmpfs", "FUSE", "K=V",
         "/tmp", "inf", "-inf", "1e400", "1_0", " 1 ", "0x1", "\u0661", "/etc/shadow",
         "/proc/self"]
    )
    | st.text(max_size=5)
    | st.binary(max_size=4).map(os.fsdecode)  # argv bytes that are not UTF-8 (surrogateescape)
)  # fmt: skip
JUNK = st.sampled_from(
    ["-h", "--help", "--bogus", "-it", "-eK=V", "-e=K", "--tty=yes", "--name=", "--stop-timeout=2",
     "-", "--", "true", "busybox", "-x", "---", "--no-tty",
     # abbreviations, stray '=' and look-alikes: click knows none of them
     "--secr", "--secre=x", "--=x", "-=", "--e", "-ee", "--no-redac", "--no-redact=", "--redact=",
     "-e=", "\u2014secret", "--Secret", "--env-fil", "-\udcff", "--\udcff"]
)  # fmt: skip
TOKEN = st.sampled_from(NAMES) | st.builds("{}={}".format, st.sampled_from(NAMES), VALUES)
LINE = st.lists(TOKEN | VALUES | JUNK, max_size=12)


def by_click(args: list[str]) -> tuple[dict[str, Any], bool]:
    ctx = command.make_context("run", list(args))
    return ctx.params, bool(ctx.meta["no_image"])


def same(fast: tuple[dict[str, Any], bool], slow: tuple[dict[str, Any], bool]) -> bool:
    """Equal, with each value's type (``repr``: a float NaN equals itself, Path is not str)."""
    return sorted((k, repr(v)) for k, v in fast[0].items()) == sorted(
        (k, repr(v)) for k, v in slow[0].items()
    ) and fast[1] == slow[1]


@given(LINE)
@example(["--secret", "api_key", "--", "true"])
@example(["--name", "--", "true"])
@example(["-e", "A=1", "--env", "B", "--env-file", "/nonexistent", "busybox", "--", "x"])
@example(["--redact", "--no-redact", "--stop-timeout", "nan", "--mount-type", "fuse", "--", "-"])
def test_an_accepted_line_is_what_click_reads(args: list[str]) -> None:
    fast = parse(args)
    if fast is None:
        return  # click reads it, with its own messages
    slow = by_click(args)
    assert same(fast, slow), (args, fast, slow)


@pytest.mark.parametrize(
    ("args", "no_image"),
    [
        (["-e", "--", "busybox", "echo"], False),  # the -- is -e's value: busybox is an image
        (["--name", "--", "busybox", "sh"], False),
        (["--name", "--", "--", "sh"], True),
        (["-e", "K", "--", "busybox", "echo"], True),
        (["-it", "--", "sh"], True),
        (["-ie", "--", "busybox"], False),  # -i, then -e taking the next word
        (["-eK", "--", "sh"], True),
        (["--env=--", "busybox"], False),
        (["busybox", "--", "sh"], False),
    ],
)
def test_a_double_dash_that_is_an_options_value_ends_no_options(
    args: list[str], no_image: bool
) -> None:
    assert by_click(args)[1] is no_image
    fast = parse(args)
    assert fast is None or fast[1] is no_image


@pytest.mark.parametrize(
    "args",
    [
        ["--secret", "api_key", "--", "true"],
        ["-e", "A=1", "-t", "-i", "--rm", "busybox", "sh"],
        ["--stop-timeout=2.5", "--env-file", "ci.env", "--no-redact", "--", "x", "--", "-y"],
        ["--", "true"],
        [],
    ],
)
def test_plain_lines_take_the_fast_path(args: list[str]) -> None:
    fast = parse(args)
    assert fast is not None and same(fast, by_click(args))


@pytest.mark.parametrize(
    "args",
    [
        ["--help"], ["-h", "--", "true"], ["--bogus", "--", "true"], ["--name"],
        ["--stop-timeout", "soon", "--", "true"], ["--mount-type", "nfs", "--", "true"],
        ["--tty=yes", "--", "true"],
    ],
)  # fmt: skip
def test_what_click_refuses_or_helps_with_is_left_to_it(args: list[str]) -> None:
    assert parse(args) is None
    with pytest.raises((click.ClickException, click.exceptions.Exit)):
        by_click(args)


@pytest.mark.parametrize("args", [["-it", "busybox"], ["-eA=1", "--", "true"]])
def test_short_options_run_together_are_left_to_click(args: list[str]) -> None:
    assert parse(args) is None
    by_click(args)  # which reads them
