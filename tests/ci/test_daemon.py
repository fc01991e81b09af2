"""A run without a sandbox is this process's child, never the daemon's: the CLI keeps it
in-process, and a client speaking the protocol itself is refused (the daemon would run
the command as itself, outside any namespace)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from secretd.spec import RunSpec
from tests.daemon.conftest import CANARY, Daemon, World, daemon, raw_run, world  # noqa: F401


def test_a_raw_client_asking_for_no_sandbox_is_refused(world: World, daemon: Daemon) -> None:  # noqa: F811
    marker = world.root / "ran"
    reply = raw_run(world, RunSpec(command=("touch", str(marker)), runtime="host"))
    assert reply["error"] == "the daemon runs no --no-sandbox command: use --no-daemon"
    assert reply["exit_code"] == 2
    assert not marker.exists()


def test_the_cli_runs_no_sandbox_in_process(world: World, daemon: Daemon) -> None:  # noqa: F811
    (world.root / "v").write_text("value-in-process")
    result = subprocess.run(
        [sys.executable, "-m", "secretd", "run", "--no-sandbox", "--secret",
         f"v=file:{world.root}/v", "--", "sh", "-c", 'echo "$V_FILE"'],
        cwd=world.root, env=world.env(SECRETD_HOST=world.host),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("/dev/shm/secretd-")


@pytest.mark.parametrize("clean", [[], ["--clean-env"]])
def test_github_masks_reach_the_job_log_through_the_daemon(
    world: World, daemon: Daemon, clean: list[str]  # noqa: F811
) -> None:
    """The daemon resolves the value; the job's GITHUB_ACTIONS reaches it in the run's
    environment (--clean-env keeps it), and the mask line goes to the client's stdout
    before the command's."""
    result = subprocess.run(
        [sys.executable, "-m", "secretd", "run", *clean, "--secret", "api_key", "--",
         "echo", "started"],
        cwd=world.root, env=world.env(SECRETD_HOST=world.host, GITHUB_ACTIONS="true"),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"::add-mask::{CANARY}\nstarted\n"
    assert any(str(e["msg"]).startswith("run ") for e in daemon.events())  # the daemon's run
