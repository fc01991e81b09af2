"""The thin client with a daemon and the full CLI without one print the same and end
with the same status, for each command line of the table; the runs the thin client
cannot do as the full CLI would are handed back to it."""

from __future__ import annotations

import pytest

from .conftest import VALUE, Fast

SH = ("sh", "-c")
# (id, arguments after "run", stdin, who runs it: the daemon, the full CLI once the daemon
# handed it back, or the full CLI without asking)
TABLE = [
    ("secret", ["--secret", "api_key", "--", *SH, "wc -c </run/secrets/api_key"], None, "daemon"),
    ("exit-1", ["--", *SH, "echo out; echo err >&2; exit 1"], None, "daemon"),
    ("exit-0-args", ["--", "printf", "%s|", "a b", "é", "--", "-x"], None, "daemon"),
    ("stdin", ["-i", "--", "cat"], "piped input\n", "daemon"),
    ("cwd", ["--", "pwd"], None, "daemon"),
    ("env", ["-e", "FROM_CALLER", "-e", "SET=1", "--", *SH, "echo $FROM_CALLER $SET"], None,
     "daemon"),
    ("warning", ["-e", "DB_PASSWORD=Zx9-kL2-mN8-qR4", "--", "true"], None, "daemon"),
    ("file-env", ["--file-env", "--secret", "api_key", "--", *SH, "echo $API_KEY_FILE"], None,
     "daemon"),
    ("sigint-130", ["--", *SH, "kill -INT $$"], None, "daemon"),
    ("sigterm-143", ["--", *SH, "kill -TERM $$"], None, "daemon"),
    ("not-found-127", ["--", "no-such-command-fastpath"], None, "daemon"),
    ("not-runnable-126", ["--", "/etc/hostname"], None, "daemon"),
    ("unknown-secret-125", ["--secret", "nosuch_fastpath", "--", "true"], None, "daemon"),
    ("unknown-flag-2", ["--bogus", "--", "true"], None, "back"),
    ("bad-reference-2", ["--secret", "x=nope:thing", "--", "true"], None, "daemon"),
    ("no-command-2", ["--secret", "api_key", "--"], None, "back"),
    ("env-reference", ["--secret", "tok=env:FASTPATH_TOKEN", "--", "cat", "/run/secrets/tok"],
     None, "back"),
    ("bad-env-reference", ["--secret", "tok=env:FASTPATH_UNSET", "--", "true"], None, "back"),
    ("image-or-program", ["--secret", "api_key", "true"], None, "back"),
    ("help", ["--help"], None, "local"),
    ("no-daemon", ["--no-daemon", "--", "true"], None, "local"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "stdin", "by"), [row[1:] for row in TABLE], ids=[row[0] for row in TABLE]
)
def test_same_as_the_full_cli(fast: Fast, args: list[str], stdin: str | None, by: str):
    extra = {"FROM_CALLER": "caller-value", "FASTPATH_TOKEN": "tok-value"}
    before = len(fast.log.read_text())
    thin = fast.thin("run", *args, input=stdin or "", extra_env=extra)
    log = fast.log.read_text()[before:]
    full = fast.full("run", *args, input=stdin or "", extra_env=extra)
    assert (thin.returncode, thin.stdout, thin.stderr) == (
        full.returncode, full.stdout, full.stderr,
    )  # fmt: skip
    asked, back = "request op=argv" in log, "handed back" in log
    expected = {"daemon": (True, False), "back": (True, True), "local": (False, False)}
    assert (asked, back) == expected[by]
    if "-e" in args and args[args.index("-e") + 1].startswith("DB_PASSWORD="):
        assert "secretd: warning: -e DB_PASSWORD looks like a secret" in thin.stderr
    if args[-1] == "wc -c </run/secrets/api_key":
        assert thin.stdout.strip() == str(len(VALUE))
