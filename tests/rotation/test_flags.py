"""Bad rotation flags: one line naming what is wrong and the fix, exit 2, nothing started."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

Secretd = Callable[..., subprocess.CompletedProcess[str]]

BAD = [
    (
        ["--on-change", "reload"],
        "secretd: unknown --on-change action 'reload': use one of none, signal:NAME, restart, "
        "exec:CMD\n",
    ),
    (
        ["--on-change", "signal:NOPE"],
        "secretd: unknown signal 'NOPE' in --on-change signal:NOPE: give a signal name like HUP "
        "or SIGUSR1\n",
    ),
    (
        ["--refresh", "500ms"],
        "secretd: refresh '500ms' in '--refresh' is under 1 s: give a duration of 1s or more, "
        "like 30s or 5m\n",
    ),
    (
        ["--refresh", "soon"],
        "secretd: invalid refresh 'soon' in '--refresh': give a duration like 30s, 5m or 1h\n",
    ),
    (
        ["--stop-signal", "SIGNOPE"],
        "secretd: unknown signal 'SIGNOPE' in --stop-signal: give a signal name like HUP or "
        "SIGUSR1\n",
    ),
]


@pytest.mark.parametrize(("flags", "stderr"), BAD, ids=lambda v: str(v)[:30])
def test_a_bad_flag_is_one_line_and_exit_2(
    secretd: Secretd, tmp_path: Path, flags: list[str], stderr: str
) -> None:
    marker = tmp_path / "ran"
    done = secretd("run", "--no-daemon", *flags, "--", "touch", str(marker))
    assert (done.returncode, done.stderr) == (2, stderr)
    assert not marker.exists()


def test_refresh_under_a_second_in_a_reference_and_in_secretd_toml(
    secretd: Secretd, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    done = secretd("run", "--secret", "source=api_key,refresh=0.2s", "--", "touch", str(marker))
    assert done.returncode == 2
    assert done.stderr == (
        "secretd: refresh '0.2s' in 'source=api_key,refresh=0.2s' is under 1 s: give a duration "
        "of 1s or more, like 30s or 5m\n"
    )
    Path("secretd.toml").write_text('[secrets.api_key]\nsource = "local:api_key"\nrefresh = 0\n')
    done = secretd("run", "--secret", "api_key", "--", "touch", str(marker))
    assert done.returncode == 2
    assert "is under 1 s" in done.stderr and "[secrets.api_key]" in done.stderr
    assert not marker.exists()


def test_refresh_with_detach_and_no_daemon_says_to_start_one(secretd: Secretd) -> None:
    done = secretd("run", "-d", "--refresh", "30s", "--runtime", "oci", "img", "true")
    assert done.returncode == 2
    assert done.stderr == (
        "secretd: --refresh with -d needs the secretd daemon, which keeps a detached "
        "container's files current after this command returns: start it with "
        "'secretd daemon', or drop --refresh\n"
    )


def test_notify_without_a_daemon_says_to_start_one(secretd: Secretd) -> None:
    done = secretd("secret", "rotate", "--notify", "api_key")
    assert (done.returncode, done.stderr) == (
        2,
        "secretd: no secretd daemon answers, so no run is waiting to be told: start it with "
        "'secretd daemon'; runs with --refresh see new versions themselves\n",
    )


def test_the_engine_checks_a_refresh_a_raw_client_sends() -> None:
    """The daemon decodes a caller's RunSpec: a refresh of 10 ms must not reach the loop."""
    from secretd.errors import UsageError
    from secretd.rotation import check_spec
    from secretd.spec import RunSpec

    for refresh in (0.01, float("nan"), -1.0):
        with pytest.raises(UsageError, match="refresh"):
            check_spec(RunSpec(command=("true",), refresh=refresh))
    check_spec(RunSpec(command=("true",), refresh=1.0))
