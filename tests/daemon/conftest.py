"""A real ``secretd daemon`` process on a temporary socket, and clients to talk to it.

The daemon's world lives in a directory under /tmp that ``nobody`` can traverse (pytest's
own tmp dirs are 0700), with a ``secretd.toml`` binding ``api_key`` and ``db_password``
to ``file:`` sources only root can read, and a policy that grants ``nobody`` api_key.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from secretd import protocol
from secretd.spec import RunSpec
from tests.support.leftovers import mounted_anywhere as mounts_at  # noqa: F401 - tests import it here
from tests.support.waiting import wait_for  # noqa: F401 - the tests import it from here

CANARY = "canary-d43m0n-5e3ret"
DB_PASSWORD = "db-pw-0f1e2d"
NOBODY = 65534
CONFIG = """\
[secrets.api_key]
source = "file:api_key.txt"

[secrets.db_password]
source = "file:db_password.txt"

[daemon]
socket_mode = "0666"
read_timeout = 1.0
engines = []

[[policy.rules]]
name = "web"
users = ["nobody"]
secrets = ["api_*"]
"""


@dataclass
class World:
    root: Path
    socket: Path
    config: Path
    runtime: Path
    state: Path
    log: Path

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(SECRETD_RUNTIME_DIR=str(self.runtime), SECRETD_STATE_DIR=str(self.state))
        env.update(extra)
        return env


@pytest.fixture
def world() -> Iterator[World]:
    root = Path(tempfile.mkdtemp(prefix="secretd-daemon-", dir="/tmp"))
    root.chmod(0o755)
    (root / "api_key.txt").write_text(CANARY)
    (root / "db_password.txt").write_text(DB_PASSWORD)
    for name in ("api_key.txt", "db_password.txt"):
        (root / name).chmod(0o600)
    (root / "secretd.toml").write_text(CONFIG)
    run_dir = root / "sock"
    run_dir.mkdir(mode=0o755)
    yield World(
        root=root,
        socket=run_dir / "secretd.sock",
        config=root / "secretd.toml",
        runtime=root / "runtime",
        state=root / "state",
        log=root / "daemon.log",
    )
    shutil.rmtree(root, ignore_errors=True)


class Daemon:
    """One ``secretd daemon`` process; ``start``/``stop``/``kill`` and log access."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        w = self.world
        args = ["--log-level", "debug", "daemon", "--socket", str(w.socket)]
        args += ["--config-file", str(w.config), "--log-format", "json"]
        with w.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "secretd", *args],
                cwd=w.root,
                env=w.env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        wait_for(lambda: ping(w.socket) is not None, f"the daemon to answer; log:\n{self.logs()}")

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(15)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(5)

    def logs(self) -> str:
        return self.world.log.read_text() if self.world.log.exists() else ""

    def events(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.logs().splitlines() if line.startswith("{")]

    def idle_fds(self, timeout: float = 5.0) -> int:
        """The daemon's descriptor count once no connection is open (its sockets are the
        listener and, once a client made a close wait, the closing process's channel:
        ``closer.py``): what must return to its baseline after any load, give or take
        that channel."""

        def links() -> list[str]:
            fd_dir, found = f"/proc/{self.pid}/fd", []
            for fd in os.listdir(fd_dir):
                with contextlib.suppress(FileNotFoundError):  # closed meanwhile
                    found.append(os.readlink(f"{fd_dir}/{fd}"))
            return found

        wait_for(
            lambda: sum(link.startswith("socket:") for link in links()) == 1 + len(self.closing()),
            "the daemon to close its connections",
            timeout,
        )
        return len(links()) - len(self.closing())

    def closing(self) -> list[int]:
        """The daemon's closing processes (``closer.py``): none or one."""
        children = []  # each thread's (the intake's thread starts it)
        with contextlib.suppress(FileNotFoundError):
            for task in Path(f"/proc/{self.pid}/task").iterdir():
                with contextlib.suppress(FileNotFoundError):
                    children += (task / "children").read_text().split()
        found = []
        for child in children:
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                if b"secretd.closing" in Path(f"/proc/{child}/cmdline").read_bytes():
                    found.append(int(child))
        return found


@pytest.fixture
def daemon(world: World) -> Iterator[Daemon]:
    started = Daemon(world)
    started.start()
    yield started
    if started.proc is not None and started.proc.poll() is None:
        assert started.stop() == 0, started.logs()


def ping(path: Path) -> dict[str, object] | None:
    try:
        return call(path, protocol.request("ping"))
    except OSError:
        return None


def call(
    path: Path, message: dict[str, object], timeout: float = 10, fds: Sequence[int] = ()
) -> dict[str, object]:
    """One request over a fresh connection, the way the client sends it."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(path))
        chan = protocol.Channel(sock)
        chan.send(message, fds)
        reply, _ = chan.receive(timeout)
    return reply


def raw_run(world: World, spec: RunSpec, secrets: Sequence[str] = ()) -> dict[str, object]:
    """The daemon's answer to a ``run`` sent by a client speaking the protocol itself,
    which may ask what the CLI never does; the command's stdio is /dev/null (a run hands
    over stdin, stdout and stderr)."""
    request = protocol.request(
        "run", spec=spec.to_json(), secrets=list(secrets), cwd=str(world.root)
    )
    with open(os.devnull, "r+b") as null:
        return call(world.socket, request, fds=[null.fileno()] * 3)


def client(
    world: World, *args: str, user: int | None = None, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    """``secretd ARGS`` through the daemon (``SECRETD_HOST``), as root or as ``nobody``."""
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    kwargs.setdefault("timeout", 60)
    command = [sys.executable, "-m", "secretd", *args]
    if user is None:
        env = world.env(SECRETD_HOST=world.host)
        return subprocess.run(command, cwd=world.root, env=env, **kwargs)  # type: ignore[call-overload,no-any-return]
    line = " ".join(_quote(part) for part in command)
    script = f"cd {world.root} && exec {line}"
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "SECRETD_HOST": world.host}
    env.update((k, v) for k, v in os.environ.items() if k == "SECRETD_REDACT")
    return subprocess.run(["su", "nobody", "-s", "/bin/sh", "-c", script], env=env, **kwargs)  # type: ignore[call-overload,no-any-return]


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"
