"""``secretd run --redact`` as a user meets it: a real command prints a secret it was
given in every form a job log shows, through the real CLI and the real sandbox, and only
those bytes change; exit statuses, signals, binary output, terminals and prompts do not."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from secretd.redact import Redactable, forms, redact
from tests.conftest import Runner
from tests.support.terminal import on_a_terminal

pytestmark = pytest.mark.root  # the sandbox at /run/secrets

VALUE = 'sk_live-4f9a/b+c"d\\e=f'  # URL and JSON escape it; base64 of it has + and /
SECRET = ["--secret", "t=env:RUN_TOKEN"]
# prints the value of /run/secrets/t in every form, coloured, with binary around it
PRINTER = r"""
import base64, json, sys, urllib.parse
v = open("/run/secrets/t", "rb").read()
out = sys.stdout.buffer
out.write(b"plain: " + v + b"\n")
for pad in (b"", b"x", b"xy"):
    out.write(b"base64: " + base64.b64encode(pad + v + b"!") + b"\n")
    out.write(b"base64url: " + base64.urlsafe_b64encode(pad + v) + b"\n")
out.write(b"url: " + urllib.parse.quote(v, safe="").encode() + b"\n")
out.write(b"hex: " + v.hex().encode() + b" HEX: " + v.hex().upper().encode() + b"\n")
out.write(b"json: " + json.dumps({"token": v.decode()}).encode() + b"\n")
out.write(b"\x1b[1;31mtoken=" + v + b"\x1b[0m done\n")
out.write(bytes(range(256)) * 40 + b"\n")
out.flush()
sys.stderr.buffer.write(b"err: " + v + b"\n")
"""


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUN_TOKEN", VALUE)
    for name in ("CI", "GITLAB_CI", "GITHUB_ACTIONS", "SECRETD_REDACT"):  # the real default
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def printer(tmp_path: Path) -> Path:
    script = tmp_path / "printer.py"
    script.write_text(PRINTER)
    script.chmod(0o644)
    return script


def run(secretd: Runner, *args: str, **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    kwargs.setdefault("input", b"")
    return secretd("run", "--no-daemon", *SECRET, *args, **kwargs)  # type: ignore[return-value]


def test_every_form_is_masked_and_every_other_byte_kept(
    secretd: Runner, token: None, printer: Path
) -> None:
    plain = run(secretd, "--no-redact", "--", sys.executable, str(printer))
    assert plain.returncode == 0, plain.stderr
    assert VALUE.encode() in plain.stdout and VALUE.encode() in plain.stderr

    masked = run(secretd, "--", sys.executable, str(printer))  # stdout is a pipe: on
    assert masked.returncode == 0, masked.stderr
    values = [Redactable("t", VALUE.encode())]
    assert masked.stdout == redact(plain.stdout, values)
    assert masked.stderr == b"err: [MASKED]\n"
    for form in forms(VALUE.encode()):
        assert form not in masked.stdout
    binary = bytes(range(256)) * 40 + b"\n"
    assert masked.stdout.endswith(b" done\n" + binary)  # NULs, escapes and all, untouched
    lines = masked.stdout.removesuffix(binary).split(b"\n")
    assert lines[0] == b"plain: [MASKED]"
    assert lines[9] == b'json: {"token": "[MASKED]"}'
    assert lines[10] == b"\x1b[1;31mtoken=[MASKED]\x1b[0m done"
    assert all(b"[MASKED]" in line for line in lines[:11])


def test_a_value_split_across_two_writes_is_masked(secretd: Runner, token: None) -> None:
    script = (
        'v=$(cat /run/secrets/t); head=${v%%/*}; printf "\\033[32m%s" "$head"; '
        'sleep 0.03; printf "/%s\\033[0m\\n" "${v#*/}"'
    )
    result = run(secretd, "--", "sh", "-c", script)
    assert (result.returncode, result.stderr) == (0, b"")
    assert result.stdout == b"\x1b[32m[MASKED]\x1b[0m\n"


@pytest.mark.parametrize(
    ("command", "status"), [("exit 0", 0), ("exit 3", 3), ("kill -TERM $$", 143)]
)
def test_exit_status_is_the_commands(
    secretd: Runner, token: None, command: str, status: int
) -> None:
    for flag in ("--redact", "--no-redact"):
        result = run(secretd, flag, "--", "sh", "-c", f"cat /run/secrets/t; {command}")
        assert result.returncode == status, (flag, result.stderr)


def test_sigterm_to_secretd_reaches_the_command_and_its_output_is_drained(
    token: None, tmp_path: Path
) -> None:
    ready = tmp_path / "ready"
    script = (
        # secretd relays signals once launch() has returned: give it a moment after the start
        f"trap 'cat /run/secrets/t; echo; exit 7' TERM; sleep 1; touch {ready}; "
        "while :; do sleep 0.05; done"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "secretd", "run", "--no-daemon", "--redact", *SECRET, "--",
         "sh", "-c", script],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert (proc.returncode, out) == (7, b"[MASKED]\n")  # stderr: sh may say "Terminated"
    assert VALUE.encode() not in err


def test_input_reaches_the_command_unchanged(secretd: Runner, token: None) -> None:
    data = bytes(range(256)) * 100
    result = run(secretd, "--redact", "--", "cat", input=data)
    assert (result.returncode, result.stdout, result.stderr) == (0, data, b"")


def test_short_values_warn_once_by_name_and_redact_false_opts_out(
    secretd: Runner, token: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PIN", "4711")
    (tmp_path / "secretd.toml").write_text(
        '[secrets.quiet]\nsource = "env:QUIET"\nredact = false\n'
    )
    monkeypatch.setenv("QUIET", "not-secret-but-long")
    result = run(
        secretd, "--secret", "pin=env:PIN", "--secret",
        "source=env:RUN_TOKEN,target=u,redact=false", "--secret", "quiet", "--", "sh", "-c",
        "cat /run/secrets/pin; echo; cat /run/secrets/u; echo; cat /run/secrets/quiet; echo",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    # t (the same value, redact on) still masks it: one secret's opt-out is not another's
    assert result.stdout == b"4711\n[MASKED]\nnot-secret-but-long\n"
    assert (
        result.stderr == b"secretd: warning: secret 'pin' is shorter than 8 bytes: not redacted\n"
    )
    alone = secretd(
        "run",
        "--no-daemon",
        "--secret",
        "source=env:RUN_TOKEN,target=u,redact=false",
        "--",
        "cat",
        "/run/secrets/u",
        input=b"",
    )
    assert (alone.returncode, alone.stdout) == (0, VALUE.encode())


CHECK_TTY = (
    "import os; print('tty', os.isatty(0), os.isatty(1), os.isatty(2), "
    "os.get_terminal_size(1).columns); print(open('/run/secrets/t').read())"
)


@pytest.mark.parametrize(
    ("flags", "extra", "shown"),
    [
        (["--redact"], {}, b"[MASKED]"),
        ([], {}, VALUE.encode()),  # a terminal, no CI: off by default
        ([], {"GITLAB_CI": "true", "CI": "true"}, b"[MASKED]"),
        ([], {"SECRETD_REDACT": "true"}, b"[MASKED]"),
        ([], {"CI": "true", "SECRETD_REDACT": "false"}, VALUE.encode()),
    ],
)
def test_on_a_terminal_the_command_keeps_its_terminal(
    token: None, flags: list[str], extra: dict[str, str], shown: bytes
) -> None:
    argv = [sys.executable, "-m", "secretd", "run", "--no-daemon", *flags, *SECRET, "--",
            sys.executable, "-c", CHECK_TTY]  # fmt: skip
    status, seen = on_a_terminal(argv, {**os.environ, **extra})
    assert status == 0, seen
    lines = seen.replace(b"\r\n", b"\n").split(b"\n")
    assert b"tty True True True 123" in lines, seen
    assert shown in lines, seen
    if shown != VALUE.encode():
        assert VALUE.encode() not in seen


def test_a_value_rotated_in_while_the_command_runs_is_masked_too(
    token: None, tmp_path: Path
) -> None:
    value = tmp_path / "value"
    value.write_text("first-value-1234")
    value.chmod(0o644)
    script = (
        'while [ "$(cat /run/secrets/r)" = first-value-1234 ]; do sleep 0.1; done; '
        "cat /run/secrets/r; echo"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "secretd", "run", "--no-daemon", "--redact", "--refresh", "1s",
         "--secret", f"r=file:{value}", "--", "sh", "-c", script],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    time.sleep(0.5)
    value.write_text("second-value-5678")
    out, err = proc.communicate(timeout=60)
    assert (proc.returncode, out) == (0, b"[MASKED]\n"), err


def test_a_non_blocking_stdout_that_fills_up_loses_nothing(token: None) -> None:
    """Another process may have made the pipe non-blocking (they share it): the filter
    waits for room, as a blocking write would, instead of giving up on the output."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    size = 1 << 20
    with os.fdopen(read_end, "rb") as reader:
        proc = subprocess.Popen(
            [sys.executable, "-m", "secretd", "run", "--no-daemon", "--redact", *SECRET, "--",
             "sh", "-c", f"head -c {size} /dev/zero; cat /run/secrets/t"],
            stdout=write_end, stderr=subprocess.PIPE,
        )  # fmt: skip
        os.close(write_end)
        time.sleep(1)  # the pipe fills while nobody reads
        out = reader.read()
    _, err = proc.communicate(timeout=60)
    assert (proc.returncode, out == bytes(size) + b"[MASKED]") == (0, True), err


def test_a_secret_at_the_size_limit_is_masked_without_delay(
    secretd: Runner, token: None, tmp_path: Path
) -> None:
    """A 500 KiB keystore-like value of one byte repeated (the automaton the library would
    pick for its forms took minutes): masked by its lines, with one warning saying so."""
    big = tmp_path / "big"
    line = b"x" * 100 + b"\n"
    big.write_bytes(line * 5000)
    big.chmod(0o644)
    result = run(
        secretd, "--redact", "--secret", f"v=file:{big}", "--", "sh", "-c",
        "wc -c < /run/secrets/v; head -n 2 /run/secrets/v",
    )  # fmt: skip
    assert (result.returncode, result.stdout) == (0, b"505000\n[MASKED]\n[MASKED]\n")
    assert result.stderr == (
        b"secretd: warning: secret 'v' is longer than 65536 bytes: only its lines are redacted\n"
    )


def test_info_shows_the_redact_setting_and_its_origin(secretd: Runner, tmp_path: Path) -> None:
    assert "  redact = false  (env SECRETD_REDACT)" in secretd("info").stdout  # tests' conftest
    (tmp_path / "secretd.toml").write_text('redact = "auto"\n')
    shown = secretd("info", env={**os.environ, "SECRETD_REDACT": ""}).stdout
    assert f"  redact = auto  ({tmp_path / 'secretd.toml'})" in shown
    (tmp_path / "secretd.toml").write_text('redact = "sometimes"\n')
    refused = secretd("info", env={**os.environ, "SECRETD_REDACT": ""})
    assert (refused.returncode, refused.stderr) == (
        2, f"secretd: redact in {tmp_path / 'secretd.toml'} is 'sometimes': give true, false or "
        '"auto"\n',
    )  # fmt: skip


def test_stdout_and_stderr_on_one_pipe_keep_their_order(token: None) -> None:
    """``2>&1``, as a CI job log is: one filter for both, so the lines stay interleaved
    as the command wrote them (two filters would race to the pipe)."""
    script = "for i in $(seq 1 200); do echo out$i; echo err$i >&2; done; cat /run/secrets/t"
    result = subprocess.run(
        [sys.executable, "-m", "secretd", "run", "--no-daemon", "--redact", *SECRET, "--",
         "sh", "-c", script],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60, check=False,
    )  # fmt: skip
    expected = "".join(f"out{i}\nerr{i}\n" for i in range(1, 201)) + "[MASKED]"
    assert (result.returncode, result.stdout.decode()) == (0, expected)


RESIZE = r"""
import os, signal, sys, time
def report(*_):
    print("size", os.get_terminal_size(1).columns, flush=True)
signal.signal(signal.SIGWINCH, report)
report()
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    time.sleep(0.05)
"""


def test_a_resized_terminal_resizes_the_commands_pty(token: None, tmp_path: Path) -> None:
    """The terminal's own SIGWINCH reaches the command (its foreground group) before the
    pty has the new size; the filter follows the size and signals again."""
    script = tmp_path / "resize.py"
    script.write_text(RESIZE)
    script.chmod(0o644)
    argv = [sys.executable, "-m", "secretd", "run", "--no-daemon", "--redact", *SECRET, "--",
            sys.executable, str(script)]  # fmt: skip
    pid, master = pty.fork()
    if pid == 0:
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
        os.execve(argv[0], argv, dict(os.environ))
    seen = b""
    try:
        while b"size 100" not in seen:
            assert select.select([master], [], [], 30)[0], seen
            seen += os.read(master, 4096)
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 77, 0, 0))
        while b"size 77" not in seen:
            assert select.select([master], [], [], 30)[0], seen
            seen += os.read(master, 4096)
    finally:
        os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)
        os.close(master)


def test_a_reader_that_never_reads_does_not_hang_secretd(token: None) -> None:
    """The command is gone, its output stuck in a full pipe nobody reads: secretd ends
    with the command's status after a bounded wait, instead of waiting forever."""
    read_end, write_end = os.pipe()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "secretd", "run", "--no-daemon", "--redact", *SECRET, "--",
             "sh", "-c", "head -c 100000 /dev/zero; exit 9"],  # fills the pipe, not more
            stdout=write_end, stderr=subprocess.PIPE,
        )  # fmt: skip
        os.close(write_end)
        _, err = proc.communicate(timeout=60)
    finally:
        os.close(read_end)
    assert proc.returncode == 9
    assert err == b"secretd: warning: the reader of a command's output does not read; " \
        b"leaving its filter\n"
