"""Configs and templates never reach the daemon's engine: the CLI runs them in-process,
and a client speaking the protocol itself is refused (the policy has no rules for them)."""

from __future__ import annotations

import subprocess
import sys

from secretd.spec import RunSpec, SecretRef
from tests.daemon.conftest import Daemon, World, raw_run


def test_a_raw_client_sending_configs_is_refused(world: World, daemon: Daemon) -> None:
    config = SecretRef("shadow", "file:/etc/shadow", "/shadow", kind="config")
    reply = raw_run(world, RunSpec(command=("cat", "/shadow"), configs=(config,)))
    assert reply["error"] == "the daemon does not run --config or --template yet: use --no-daemon"
    assert reply["exit_code"] == 2


def test_the_cli_runs_configs_in_process(world: World, daemon: Daemon) -> None:
    (world.root / "app.conf").write_text("listen 80;\n")
    result = subprocess.run(
        [sys.executable, "-m", "secretd", "run", "--config",
         f"source=file:{world.root}/app.conf,target=/run/secrets/app.conf", "--",
         "cat", "/run/secrets/app.conf"],
        cwd=world.root, env=world.env(SECRETD_HOST=world.host),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (result.returncode, result.stdout, result.stderr) == (0, "listen 80;\n", "")
