"""Exit statuses as `docker run` reports them, and failures before the command starts."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from .conftest import CANARY, host_secretd_mounts, start_run

pytestmark = pytest.mark.root


@pytest.mark.parametrize(("command", "status"), [("true", 0), ("exit 3", 3)])
def test_command_status_is_secretd_status(secretd, command: str, status: int) -> None:
    assert secretd("run", "--", "sh", "-c", command).returncode == status


def test_missing_command_is_127(secretd) -> None:
    result = secretd("run", "--", "no-such-command-xyz")
    assert result.returncode == 127
    assert (
        result.stderr
        == "secretd: cannot run 'no-such-command-xyz': command not found: check PATH or the name\n"
    )


def test_not_executable_is_126(secretd, tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    result = secretd("run", "-u", "65534", "--", str(script))
    assert result.returncode == 126
    assert result.stderr.startswith(f"secretd: cannot run '{script}': ")


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signals_are_forwarded(tmp_path: Path, signum: int, status: int) -> None:
    ready = tmp_path / "ready"
    handler = (
        f"trap 'echo got{int(signum)}; exit {status}' {int(signum)}; "
        f"touch {ready}; while :; do sleep 0.05; done"
    )
    proc = start_run(ready, "--", "sh", "-c", handler, stdout=subprocess.PIPE, text=True)
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=10)
    assert out.strip() == f"got{int(signum)}"
    assert proc.returncode == status


def test_killed_command_reports_128_plus_signal(secretd) -> None:
    assert secretd("run", "--", "sh", "-c", "kill -KILL $$").returncode == 137


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("source=x,target=../escape", "has the element '..'"),
        ("source=x,target=a//b", "has an empty path element"),
        ("source=x,mode=4755", "has setuid, setgid or sticky bits"),
        ("source=x,mode=1000", "has setuid, setgid or sticky bits"),
        ("source=x,mode=0999", "invalid mode"),
        ("source=x,uid=root", "invalid uid"),
        ("../x", "invalid secret name '../x'"),
        ("source=x,colour=red", "invalid field 'colour=red'"),
    ],
)
def test_bad_references_are_usage_errors(secretd, tmp_path: Path, ref: str, message: str) -> None:
    marker = tmp_path / "started"
    result = secretd("run", "--secret", ref, "--", "touch", str(marker))
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stderr.count("\n") == 1
    assert not marker.exists()


def test_duplicate_targets_are_refused(secretd, tmp_path: Path) -> None:
    result = secretd(
        "run", "--secret", "a=env:A", "--secret", "source=env:B,target=a", "--", "true"
    )
    assert result.returncode == 2
    assert result.stderr == (
        "secretd: secrets 'a' and 'a' both target '/run/secrets/a': "
        "give one of them another target=\n"
    )


def test_unresolvable_secret_is_125_and_nothing_starts(secretd, tmp_path: Path) -> None:
    marker = tmp_path / "started"
    result = secretd("run", "--secret", "db=env:NOT_SET_ANYWHERE", "--", "touch", str(marker))
    assert result.returncode == 125
    assert result.stderr.startswith(
        "secretd: secret 'db': environment variable 'NOT_SET_ANYWHERE' is not set"
    )
    assert not marker.exists()
    assert host_secretd_mounts() == []


def test_one_bad_secret_among_good_ones_writes_nothing(
    secretd, monkeypatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GOOD", CANARY)
    result = secretd(
        "run", "--secret", "good=env:GOOD", "--secret", "bad=file:/nonexistent", "--", "true"
    )
    assert result.returncode == 125
    assert "secret 'bad': file '/nonexistent' does not exist" in result.stderr
    assert CANARY not in result.stderr + result.stdout


def test_value_never_in_secretd_output_even_at_debug(secretd, monkeypatch) -> None:
    monkeypatch.setenv("CANARY_SECRET", CANARY)
    result = secretd("--debug", "run", "--secret", "c=env:CANARY_SECRET", "--", "true")
    assert result.returncode == 0
    assert "secretd: debug:" in result.stderr
    assert CANARY not in result.stderr + result.stdout


def test_sigpipe_has_its_default_action(secretd) -> None:
    """Python ignores SIGPIPE; the command must not inherit that (`yes | head` ends)."""
    result = secretd("run", "--", "sh", "-c", "yes | head -n 1; grep SigIgn /proc/self/status")
    assert result.returncode == 0
    ignored = int(result.stdout.split()[-1], 16)
    assert not ignored & (1 << (13 - 1)), "SIGPIPE is ignored in the command"
