"""Attackers and victims for the security suites, as real local users.

The attacker is ``nobody``. The victim is a uid of its own (no passwd entry needed:
``setpriv``), chosen per test session, so that its ``/tmp/secretd-<uid>`` is nobody
else's fallback runtime directory and tests that run as ``nobody`` elsewhere are not
disturbed. The impostor is a listener ``nobody`` starts where the victim's daemon socket
would be; it counts every byte and descriptor it receives.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.launcher import COMPILED
from tests.support.waiting import wait_for

NOBODY = 65534
REPO = Path(__file__).resolve().parents[2]
MODULE = (sys.executable, "-m", "secretd")
# The ways a user starts ``secretd``: the full CLI, and the compiled client setup installs.
COMMANDS = {"module": MODULE, "compiled": (str(COMPILED),)}
IMPOSTOR = r"""
import json, os, socket, sys
path, report = sys.argv[1], sys.argv[2]
got = {"connections": 0, "bytes": 0, "fds": 0}
def save():
    with open(report + ".tmp", "w") as fh:
        json.dump(got, fh)
    os.rename(report + ".tmp", report)
os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(path)
os.chmod(path, 0o777)
server.listen(64)
save()
while True:
    conn, _ = server.accept()
    got["connections"] += 1
    save()
    conn.settimeout(3)
    try:
        while True:
            data, ancillary, _, _ = conn.recvmsg(65536, socket.CMSG_SPACE(64))
            for _, _, raw in ancillary:
                got["fds"] += len(raw) // 4
            if not data:
                break
            got["bytes"] += len(data)
            save()
    except OSError:
        pass
    conn.close()
    save()
"""


def setpriv(uid: int) -> list[str]:
    """The prefix that runs a command as ``uid`` (its own group, no supplementary groups)."""
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"]


def as_user(
    uid: int, argv: list[str], env: dict[str, str], **kwargs: object
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` as ``uid`` to completion."""
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    kwargs.setdefault("timeout", 60)
    return subprocess.run([*setpriv(uid), *argv], env=env, **kwargs)  # type: ignore[call-overload,no-any-return]


def popen_as(
    uid: int, argv: list[str], env: dict[str, str], **kwargs: object
) -> subprocess.Popen[str]:
    return subprocess.Popen([*setpriv(uid), *argv], env=env, text=True, **kwargs)  # type: ignore[call-overload]


@dataclass
class Victim:
    """A local user other than root and ``nobody``, without ``XDG_RUNTIME_DIR``."""

    uid: int
    home: Path

    @property
    def runtime(self) -> Path:
        """The fallback runtime directory secretd gives this user."""
        return Path(f"/tmp/secretd-{self.uid}")

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.home),
            "PYTHONPATH": str(REPO),
            "SECRETD_STATE_DIR": str(self.home / "state"),
            "XDG_CONFIG_HOME": str(self.home / "config"),
            **{k: v for k, v in os.environ.items() if k == "SECRETD_REDACT"},
            **extra,
        }

    def secretd(
        self, *args: str, via: Sequence[str] = MODULE, **kwargs: object
    ) -> subprocess.CompletedProcess[str]:
        """``secretd ARGS`` as the victim, by the full CLI or ``via`` another command."""
        kwargs.setdefault("cwd", self.home)
        env = self.env(**kwargs.pop("extra_env", {}))  # type: ignore[arg-type]
        return as_user(self.uid, [*via, *args], env, **kwargs)


@pytest.fixture
def victim() -> Iterator[Victim]:
    uid = 20000 + os.getpid() % 20000
    home = Path(tempfile.mkdtemp(prefix="secretd-victim-", dir="/tmp"))
    os.chown(home, uid, uid)
    home.chmod(0o700)
    found = Victim(uid, home)
    _remove(found.runtime)
    yield found
    _remove(found.runtime)
    shutil.rmtree(home, ignore_errors=True)


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path, ignore_errors=True)


@dataclass
class Impostor:
    """``nobody`` listening at ``socket``; ``report()`` says what reached it."""

    socket: Path
    proc: subprocess.Popen[str]
    report_path: Path

    def report(self) -> dict[str, int]:
        return dict(json.loads(self.report_path.read_text()))


@pytest.fixture
def attacker_dir() -> Iterator[Path]:
    """A directory of ``nobody``'s own, where its reports go."""
    path = Path(tempfile.mkdtemp(prefix="secretd-attacker-", dir="/tmp"))
    os.chown(path, NOBODY, NOBODY)
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def start_impostor(socket_path: Path, attacker_dir: Path) -> Impostor:
    report = attacker_dir / f"report-{socket_path.name}.json"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(attacker_dir)}
    proc = popen_as(
        NOBODY, [sys.executable, "-c", IMPOSTOR, str(socket_path), str(report)], env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_for(report.exists, "the impostor to listen")
    return Impostor(socket_path, proc, report)


@pytest.fixture
def impostors(attacker_dir: Path) -> Iterator[list[Impostor]]:
    """Impostors started during the test (``start_impostor``), stopped after it."""
    started: list[Impostor] = []
    yield started
    for impostor in started:
        impostor.proc.kill()
        impostor.proc.wait(5)


# The daemon's world (a root daemon, api_key granted to nobody, db_password to no one).
from tests.daemon.conftest import (  # noqa: E402, F401 - fixtures, shared with tests/daemon
    CANARY,
    DB_PASSWORD,
    Daemon,
    World,
    client,
    daemon,
    world,
)
