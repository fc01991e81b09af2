"""The thin client with a daemon and the full CLI without one print the same and end
with the same status, for each command line of the table; the runs the thin client
cannot do as the full CLI would are handed back to it. ``env:`` secrets are read by the
daemon from the environment the client sent (``FASTPATH_*`` below)."""

from __future__ import annotations

import pytest

from .conftest import VALUE, Fast

SH = ("sh", "-c")
ENV = {
    "FROM_CALLER": "caller-value",
    "FASTPATH_TOKEN": "tok-value-91f",
    "FASTPATH_APP_A": "app-a-value-3d2",
    "FASTPATH_APP_B": "app-b-value-8e7",
    "FASTPATH_PATH": "token.txt",  # in the clients' working directory (test_parity's fixture)
}
TOK = ["--secret", "tok=env:FASTPATH_TOKEN"]
ECHO_TOK = [*SH, 'echo "[$(cat /run/secrets/tok)]"; echo "[$(cat /run/secrets/tok)]" >&2']
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
    ("not-runnable-126", ["--", "/etc/passwd"], None, "daemon"),
    ("unknown-secret-125", ["--secret", "nosuch_fastpath", "--", "true"], None, "daemon"),
    ("unprintable-127", ["--", "nosuch\x1b[2J\u202e\u00a0\u00e9"], None, "daemon"),
    ("unknown-flag-2", ["--bogus", "--", "true"], None, "back"),
    ("bad-reference-2", ["--secret", "x=nope:thing", "--", "true"], None, "daemon"),
    ("no-command-2", ["--secret", "api_key", "--"], None, "back"),
    ("env-reference", [*TOK, "--no-redact", "--", "cat", "/run/secrets/tok"], None, "daemon"),
    ("env-bare", ["--secret", "env:FASTPATH_TOKEN", "--no-redact", "--", *SH,
     "cat /run/secrets/FASTPATH_TOKEN; echo ${FASTPATH_TOKEN-left-out} $FROM_CALLER"], None,
     "daemon"),
    ("env-redacted", [*TOK, "--", *ECHO_TOK], None, "daemon"),
    ("env-not-redacted", [*TOK, "--no-redact", "--", *ECHO_TOK], None, "daemon"),
    ("env-unset-125", ["--secret", "tok=env:FASTPATH_UNSET", "--", "true"], None, "daemon"),
    ("env-option-2", ["--secret", "tok=env:FASTPATH_TOKEN?bogus", "--", "true"], None, "daemon"),
    ("env-pattern", ["--secret", "env:FASTPATH_APP_*", "--no-redact", "--", *SH,
     "cd /run/secrets && ls && cat FASTPATH_APP_B; env | grep -c FASTPATH_APP_ || true"], None,
     "daemon"),
    ("env-pattern-tree", ["--secret", "app=env:FASTPATH_APP_*", "--no-redact", "--", *SH,
     "ls /run/secrets/app && cat /run/secrets/app/FASTPATH_APP_A"], None, "daemon"),
    ("env-pattern-none", ["--secret", "env:FASTPATH_NONE_*", "--", "true"], None, "back"),
    ("env-pattern-tree-none-125", ["--secret", "app=env:FASTPATH_NONE_*", "--", "true"], None,
     "daemon"),
    ("env-file-env", ["--file-env", *TOK, "--", *SH, "echo $TOK_FILE"], None, "daemon"),
    ("env-named-file", ["--secret", "source=env:FASTPATH_TOKEN,target=t.txt,file_env=T_FILE",
     "--", *SH, "echo $T_FILE; wc -c <$T_FILE"], None, "daemon"),
    ("env-mixed", [*TOK, "--secret", "api_key", "--no-redact", "--", "cat", "/run/secrets/api_key",
     "/run/secrets/tok"], None, "daemon"),
    ("env-file-back", ["--secret", "tok=env:FASTPATH_PATH?file", "--no-redact", "--", "cat",
     "/run/secrets/tok"], None, "back"),
    ("image-or-program", ["--secret", "api_key", "true"], None, "back"),
    ("help", ["--help"], None, "local"),
    ("no-daemon", ["--no-daemon", "--", "true"], None, "local"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "args", "stdin", "by"), TABLE, ids=[row[0] for row in TABLE])
def test_same_as_the_full_cli(fast: Fast, name: str, args: list[str], stdin: str | None, by: str):
    (fast.root / "work" / ENV["FASTPATH_PATH"]).write_text("from-a-file-0c4\n")
    extra = ENV
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
    assert all(line.isprintable() for line in thin.stderr.splitlines())  # no terminal escape
    status = name.rpartition("-")[2]
    if status.isdigit():  # a row named for its exit status has it, not only both alike
        assert thin.returncode == int(status)
    if "-e" in args and args[args.index("-e") + 1].startswith("DB_PASSWORD="):
        assert "secretd: warning: -e DB_PASSWORD looks like a secret" in thin.stderr
    if args[-1] == "wc -c </run/secrets/api_key":
        assert thin.stdout.strip() == str(len(VALUE))


LOCALES = ("LANG", "LC_ALL", "LC_CTYPE")


@pytest.mark.parametrize(
    "locale",
    [{}, {"LANG": "C.UTF-8"}, {"LC_ALL": "C"}, {"LANG": "xx_NO.SUCH"}, {"LC_CTYPE": "POSIX"}],
    ids=["none", "lang", "lc-all", "unknown", "posix"],
)
def test_the_command_gets_the_locale_the_full_cli_gives_it(
    fast: Fast, locale: dict[str, str]
) -> None:
    """Python's start turns a C locale's LC_CTYPE into C.UTF-8 (PEP 538) in the environment
    the full CLI passes on; a run through the daemon gives the command the same."""
    args = ["run", "--", "sh", "-c", "echo ${LANG-unset} ${LC_ALL-unset} ${LC_CTYPE-unset}"]
    done = [how(*args, unset=LOCALES, extra_env=locale) for how in (fast.thin, fast.full)]
    assert [(d.returncode, d.stdout, d.stderr) for d in done] == [(0, done[1].stdout, "")] * 2
