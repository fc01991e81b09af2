"""Configs and templates never reach the daemon's engine: the CLI runs them in-process,
and a client speaking the protocol itself is refused (the policy has no rules for them)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from secretd import protocol
from secretd.spec import RunSpec, SecretRef
from tests.daemon.conftest import Daemon, World


def test_a_raw_client_sending_configs_is_refused(world: World, daemon: Daemon) -> None:
    config = SecretRef("shadow", "file:/etc/shadow", "/shadow", kind="config")
    spec = RunSpec(command=("cat", "/shadow"), configs=(config,)).to_json()
    request = protocol.request("run", spec=spec, secrets=[], cwd=str(world.root))
    with open(os.devnull, "r+b") as null, socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(world.socket))
        chan = protocol.Channel(sock)
        chan.send(request, [null.fileno()] * 3)
        reply, _ = chan.receive(10)
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
