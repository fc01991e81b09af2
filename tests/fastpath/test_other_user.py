"""Another user's run through the thin client is authorised by the daemon from the
peer's credentials, exactly as the full CLI's: what the policy grants runs, what it
does not is refused with the same line and status."""

from __future__ import annotations

import shlex
import subprocess
import sys

import pytest

from tests.daemon.conftest import Daemon, World
from tests.daemon.conftest import daemon as daemon  # noqa: F401 - the fixtures
from tests.daemon.conftest import world as world  # noqa: F401
from tests.support.launcher import install


def as_nobody(world: World, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """``argv`` as ``nobody``, from a directory without a ``secretd.toml``."""
    script = f"cd {world.socket.parent} && exec {shlex.join(argv)}"
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "SECRETD_HOST": world.host}
    return subprocess.run(
        ["su", "nobody", "-s", "/bin/sh", "-c", script], env=env, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize(
    "args",
    [
        ["--secret", "api_key", "--", "sh", "-c", "wc -c </run/secrets/api_key; id -u"],
        ["--secret", "db_password", "--", "true"],
        ["--secret", "x=file:/etc/shadow", "--", "true"],
    ],
    ids=["granted", "not-granted", "explicit-source"],
)
def test_nobody_gets_what_the_full_cli_gets(
    world: World,  # noqa: F811
    daemon: Daemon,  # noqa: F811
    args: list[str],
) -> None:
    launcher = world.root / "secretd"
    install(launcher)
    through_thin = as_nobody(world, [str(launcher), "run", *args])
    through_full = as_nobody(world, [sys.executable, "-m", "secretd", "run", *args])
    assert (through_thin.returncode, through_thin.stdout, through_thin.stderr) == (
        through_full.returncode, through_full.stdout, through_full.stderr,
    )  # fmt: skip
    assert "op=argv" in daemon.logs()
    if args[1] == "api_key":
        assert through_thin.stdout.split() == [str(len("canary-d43m0n-5e3ret")), "65534"]
    else:
        assert through_thin.returncode != 0 and through_thin.stderr.startswith("secretd: ")
