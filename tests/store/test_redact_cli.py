"""``secretd redact`` as a user runs it: a real store secret, a real command's output piped
through the real CLI."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import Runner

VALUE = b'sk_live-4f9a/b+c"d\\e=f'  # URL and JSON escape it; base64 of it has + and /
# a command that prints the value in every form a job log shows it in, one per line
PRINTER = r"""
import base64, json, sys, urllib.parse
v = sys.stdin.buffer.read()
out = sys.stdout.buffer
out.write(b"plain: " + v + b"\n")
for pad in (b"", b"x", b"xy"):
    out.write(b"base64: " + base64.b64encode(pad + v + b"!") + b"\n")
    out.write(b"base64url: " + base64.urlsafe_b64encode(pad + v) + b"\n")
out.write(b"url: " + urllib.parse.quote(v, safe="").encode() + b"\n")
out.write(b"url+: https://h/?k=" + urllib.parse.quote_plus(v).encode() + b"\n")
out.write(b"hex: " + v.hex().encode() + b" HEX: " + v.hex().upper().encode() + b"\n")
out.write(b"json: " + json.dumps({"token": v.decode()}).encode() + b"\n")
"""


def _forms(value: bytes) -> list[bytes]:
    from secretd.redact import forms

    return sorted(forms(value))


def test_every_form_in_a_commands_output_is_masked(secretd: Runner, tmp_path: Path) -> None:
    assert secretd("secret", "create", "api_key", "-", input=VALUE).returncode == 0
    script = tmp_path / "printer.py"
    script.write_text(PRINTER)
    printed = subprocess.run(
        [sys.executable, str(script)], input=VALUE, capture_output=True, check=True, timeout=60
    ).stdout
    result = secretd("redact", "--secret", "api_key", input=printed)
    assert (result.returncode, result.stderr) == (0, b"")
    lines = result.stdout.splitlines()
    assert len(lines) == len(printed.splitlines()) == 11
    for line in lines:
        assert b"[MASKED]" in line, line
    for form in _forms(VALUE):
        assert form not in result.stdout
    assert lines[0] == b"plain: [MASKED]"
    assert lines[-1] == b'json: {"token": "[MASKED]"}'
    assert b"url+: https://h/?k=[MASKED]" in lines


def test_output_without_a_value_is_byte_identical(secretd: Runner) -> None:
    assert secretd("secret", "create", "api_key", "-", input=VALUE).returncode == 0
    data = bytes(range(256)) * 300 + b"\x1b[31mred\x1b[0m no newline at the end"
    result = secretd("redact", "--secret", "api_key", input=data)
    assert (result.returncode, result.stdout, result.stderr) == (0, data, b"")


def test_a_prompt_without_newline_shows_while_input_stays_open(tmp_path: Path) -> None:
    env = {**os.environ, "PROMPT_TOKEN": VALUE.decode()}
    proc = subprocess.Popen(
        [sys.executable, "-m", "secretd", "redact", "--secret", "t=env:PROMPT_TOKEN"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(b"token " + VALUE + b"\nPassword: ")
        proc.stdin.flush()
        seen = b""
        deadline = time.monotonic() + 30
        while not seen.endswith(b"Password: ") and time.monotonic() < deadline:
            if select.select([proc.stdout], [], [], 1)[0]:
                seen += os.read(proc.stdout.fileno(), 4096)
        assert seen == b"token [MASKED]\nPassword: "
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
        proc.stdout.close()
    assert proc.returncode == 0


def test_errors_are_one_line(secretd: Runner) -> None:
    nothing = secretd("redact", input="x")
    assert (nothing.returncode, nothing.stderr) == (
        2,
        "secretd: nothing to redact: name a secret with --secret REF\n",
    )
    missing = secretd("redact", "--secret", "nope", input="x")
    assert missing.returncode != 0 and missing.stdout == ""
    assert len(missing.stderr.splitlines()) == 1 and "nope" in missing.stderr


def test_a_short_secret_is_warned_about_by_name(secretd: Runner) -> None:
    assert secretd("secret", "create", "pin", "-", input="1234").returncode == 0
    result = secretd("redact", "--secret", "pin", input="pin 1234\n")
    assert (result.returncode, result.stdout) == (0, "pin 1234\n")
    assert result.stderr == "secretd: warning: secret 'pin' is shorter than 8 bytes: not redacted\n"


def test_split_across_two_writes_inside_coloured_output(secretd: Runner) -> None:
    assert secretd("secret", "create", "api_key", "-", input=VALUE).returncode == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "secretd", "redact", "--secret", "api_key"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    try:
        os.write(proc.stdin.fileno(), b"ready\n")
        assert proc.stdout.readline() == b"ready\n"  # the filter is reading
        # two writes 20 ms apart (well under the 100 ms idle flush), the value cut in two
        os.write(proc.stdin.fileno(), b"\x1b[1;31mtoken=" + VALUE[:9])
        time.sleep(0.02)
        os.write(proc.stdin.fileno(), VALUE[9:] + b"\x1b[0m\n")
    finally:
        proc.stdin.close()
        rest = proc.stdout.read()
        proc.stdout.close()
    assert (proc.wait(timeout=60), rest) == (0, b"\x1b[1;31mtoken=[MASKED]\x1b[0m\n")
