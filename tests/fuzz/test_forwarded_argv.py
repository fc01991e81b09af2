"""The daemon's ``argv`` handler (``cli/forwarded.py``) on any command line, in any
caller's environment: it hands the run back or starts it, never both, never raises; it
starts only a host command after a bare ``--`` that names no file of the caller's (a
``--`` may be an option's value), and it leaves the daemon's ``os.environ`` as it was."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from hypothesis import event, given
from hypothesis import strategies as st

from secretd import client
from secretd.cli.run_flags import FLAGS
from secretd.config import Config
from tests.support.forwarding import StandIn, forward

CANARY = "file-canary-61d"
_FILE = Path(tempfile.mkdtemp(prefix="secretd-fuzz-argv-")) / "named.env"
_FILE.write_text(f"FROM_FILE={CANARY}\n")
DAEMON = StandIn(Config(state_dir=Path("/nonexistent"), runtime_dir=Path("/nonexistent")))

NAMES = [name for flag in FLAGS for name in (*flag.names, flag.off) if name]
WORDS = st.sampled_from(
    [*NAMES, "--", "--", "-h", "--help", "-it", "--env-file", f"--env-file={_FILE}", str(_FILE),
     "KEY", "KEY=1", "CI=true", "alpine", "alpine:3", "true", "sh", "env:CALLER_*", "x=env:V",
     "x=env:V?file", "api", "1s", "host", "sandbox", "=", ""]
)  # fmt: skip
TEXT = st.text(max_size=8).filter(lambda word: "\0" not in word)
OPTION = st.sampled_from(NAMES).map(lambda name: [name]) | st.lists(
    st.sampled_from(NAMES) | WORDS, min_size=2, max_size=2
)
ARGV = st.builds(
    lambda options, dash, command: [*sum(options, []), *dash, *command],
    st.lists(OPTION, max_size=5),
    st.sampled_from([[], ["--"]]),
    st.lists(WORDS | TEXT, max_size=3),
).filter(bool)
ENVIRON = st.dictionaries(
    st.sampled_from(["V", "KEY", "CI", "SECRETD_REDACT", "SECRETD_CI", "CALLER_A", "PATH"]),
    st.sampled_from(["", "1", "true", "none", "/x", str(_FILE), "tok-value-9f8e7d6c5b4a"]),
)


@given(argv=ARGV, environ=ENVIRON)
def test_a_forwarded_command_line_is_handed_back_or_run_as_a_host_command(
    argv: list[str], environ: dict[str, str]
) -> None:
    own = (os.environ, sys.stderr, client.run)
    before = dict(os.environ)
    DAEMON.started.clear()
    chan = forward(DAEMON, argv, environ)
    assert (os.environ, sys.stderr, client.run) == own and dict(os.environ) == before
    assert len(chan.sent) + len(DAEMON.started) == 1
    if chan.sent:
        assert chan.sent == [{"event": "fallback"}]
        return
    [run] = DAEMON.started
    event("started")
    assert run.own == own and run.environ == environ
    assert run.spec.image is None and run.spec.runtime != "host"
    assert not (run.spec.configs or run.spec.templates)
    assert CANARY not in repr(run.spec.env) + run.stderr
    assert run.spec.command == tuple(argv[len(argv) - len(run.spec.command) :])
    assert argv[len(argv) - len(run.spec.command) - 1] == "--"
