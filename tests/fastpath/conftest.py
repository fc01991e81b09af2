"""The thin client against a real ``secretd daemon``, and the full CLI without one.

One daemon serves the whole module: its socket is ``<runtime>/secretd.sock``, where a
client finds it without ``SECRETD_HOST``. The launcher is the one ``tools/setup-host.sh``
writes (``thin.write_launcher``): ``python -IS``, then ``secretd.thin``. The full CLI runs
with another runtime directory, where no daemon listens. Clients run in a directory
without a ``secretd.toml`` and with an empty ``XDG_CONFIG_HOME``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.launcher import install
from tests.support.waiting import wait_for

VALUE = "fastpath-value-7c1"
# in the daemon's environment only: a client's env:FASTPATH_DAEMON_ONLY must not see it
DAEMON_ONLY = ("FASTPATH_DAEMON_ONLY", "daemon-only-value-5b0")


@dataclass
class Fast:
    root: Path
    launcher: Path
    daemon: subprocess.Popen[bytes]
    log: Path

    @property
    def socket(self) -> Path:
        return self.root / "run" / "secretd.sock"

    def env(self, daemon: bool = True, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SECRETD_", "CI"))}
        env.pop("GITHUB_ACTIONS", None)
        env.pop("GITLAB_CI", None)
        runtime = "run" if daemon else "run-alone"
        env |= {
            "SECRETD_RUNTIME_DIR": str(self.root / runtime),
            "SECRETD_STATE_DIR": str(self.root / "state"),
            "XDG_CONFIG_HOME": str(self.root / "config"),
        }
        return env | extra

    def thin(self, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        """``secretd ARGS`` through the launcher, with the daemon there."""
        return self._run([str(self.launcher), *args], self.env(), **kwargs)

    def full(self, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        """``secretd ARGS`` by the full CLI, without a daemon."""
        return self._run([sys.executable, "-m", "secretd", *args], self.env(False), **kwargs)

    def _run(
        self, argv: list[str], env: dict[str, str], **kwargs: object
    ) -> subprocess.CompletedProcess[str]:
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        kwargs.setdefault("timeout", 60)
        for name in kwargs.pop("unset", ()):  # type: ignore[attr-defined]
            env.pop(name, None)
        env |= kwargs.pop("extra_env", {})  # type: ignore[arg-type]
        return subprocess.run(argv, cwd=self.root / "work", env=env, **kwargs)  # type: ignore[call-overload,no-any-return]

    def requests(self) -> list[str]:
        """The ops of the requests the daemon served, in order (from its debug log)."""
        lines = self.log.read_text().splitlines()
        return [line.split("op=")[1].split()[0] for line in lines if "request op=" in line]


@pytest.fixture(scope="module", params=["compiled", "python"])
def fast(request: pytest.FixtureRequest) -> Iterator[Fast]:
    """Each test runs with the compiled client and with the Python launcher alone."""
    root = Path(tempfile.mkdtemp(prefix="secretd-fastpath-", dir="/tmp"))
    for name in ("work", "config", "run", "run-alone"):
        (root / name).mkdir(mode=0o700)
    launcher = install(root / "secretd", request.param)
    log = root / "daemon.log"
    base = {k: v for k, v in os.environ.items() if not k.startswith("SECRETD_")}
    env = base | {"SECRETD_STATE_DIR": f"{root}/state", "SECRETD_RUNTIME_DIR": f"{root}/run"}
    env[DAEMON_ONLY[0]] = DAEMON_ONLY[1]
    subprocess.run(
        [sys.executable, "-m", "secretd", "secret", "create", "api_key", "-"],
        input=VALUE.encode(), env=env, cwd=root, check=True, capture_output=True,
    )  # fmt: skip
    with log.open("ab") as out:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "secretd", "--log-level", "debug", "daemon"],
            env=env, cwd=root, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
            start_new_session=True,
        )  # fmt: skip
    made = Fast(root, launcher, daemon, log)
    wait_for(lambda: made.socket.exists() or daemon.poll() is not None, "the daemon's socket")
    assert daemon.poll() is None, log.read_text()
    yield made
    if daemon.poll() is None:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(15)
    shutil.rmtree(root, ignore_errors=True)
