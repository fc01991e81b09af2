"""The daemon's memory stays its own: non-dumpable, no core files, no values in its logs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import CANARY, DB_PASSWORD, NOBODY, Daemon, World, client, ping, wait_for

pytestmark = pytest.mark.root


def core_limit(pid: int) -> list[str]:
    with open(f"/proc/{pid}/limits") as fh:
        (line,) = [line for line in fh if line.startswith("Max core file size")]
    return line.split()[4:6]


def as_nobody(script: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", **env}
    return subprocess.run(
        ["su", "nobody", "-s", "/bin/sh", "-c", script],
        env=base,
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.fixture
def nobody_daemon() -> Iterator[tuple[int, Path]]:
    """A daemon run by ``nobody`` itself (a per-user daemon), with its own secret."""
    root = Path(tempfile.mkdtemp(prefix="secretd-nobody-", dir="/tmp"))
    root.chmod(0o755)
    (root / "key.txt").write_text(CANARY)
    (root / "secretd.toml").write_text('[secrets.api_key]\nsource = "file:key.txt"\n')
    for path in (root, root / "key.txt"):
        os.chown(path, NOBODY, NOBODY)
    (root / "key.txt").chmod(0o600)
    sock = root / "run" / "secretd.sock"
    env = {"SECRETD_RUNTIME_DIR": str(root / "run"), "SECRETD_STATE_DIR": str(root / "state")}
    daemon = subprocess.Popen(
        [
            "su",
            "nobody",
            "-s",
            "/bin/sh",
            "-c",
            f"cd {root} && exec {sys.executable} -m secretd daemon 2>{root}/log",
        ],
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", **env},
    )
    wait_for(lambda: sock.exists() and ping(sock) is not None, "nobody's daemon")
    info = ping(sock)
    assert info is not None
    yield int(str(info["pid"])), root
    daemon.terminate()
    daemon.wait(10)
    shutil.rmtree(root, ignore_errors=True)


def test_nobodys_daemon_is_not_dumpable_yet_runs_sandboxes(
    nobody_daemon: tuple[int, Path],
) -> None:
    pid, root = nobody_daemon
    status = Path(f"/proc/{pid}/status").read_text()
    assert f"Uid:\t{NOBODY}\t{NOBODY}" in status
    # a non-dumpable process's /proc files belong to root, even for its own user
    assert Path(f"/proc/{pid}/environ").stat().st_uid == 0
    for name in ("environ", "mem"):
        denied = as_nobody(f"head -c1 /proc/{pid}/{name}")
        assert denied.returncode != 0 and "Permission denied" in denied.stderr
    assert core_limit(pid) == ["0", "0"]
    host = f"unix://{root}/run/secretd.sock"
    result = as_nobody(
        f"cd {root} && {sys.executable} -m secretd run --no-redact --secret api_key -- "
        "sh -c 'id -u; cat /run/secrets/api_key'",
        SECRETD_HOST=host,
    )
    assert (result.returncode, result.stdout) == (0, f"{NOBODY}\n{CANARY}"), result.stderr


def test_root_daemon_writes_no_core_and_logs_no_values(world: World, daemon: Daemon) -> None:
    assert core_limit(daemon.pid) == ["0", "0"]
    client(world, "run", "--secret", "api_key", "--secret", "db_password", "--", "true")
    client(world, "run", "--secret", "api_key", "--", "cat", "/run/secrets/api_key")
    client(world, "run", "--secret", "db_password", "--", "no-such-command")
    client(world, "run", "--secret", "db_password", "--", "true", user=NOBODY)
    client(world, "run", "--secret", "x=file:db_password.txt", "--", "true", user=NOBODY)
    (world.root / "api_key.txt").chmod(0)  # unreadable even for root? no: root reads it
    client(world, "ps")
    assert daemon.stop() == 0
    logs = daemon.logs()
    assert "run " in logs and "denied uid=65534" in logs  # it did log, at debug level
    assert CANARY not in logs and DB_PASSWORD not in logs


def test_root_daemon_locks_its_memory(daemon: Daemon) -> None:
    status = Path(f"/proc/{daemon.pid}/status").read_text()
    locked_kib = int(
        next(line for line in status.splitlines() if line.startswith("VmLck:")).split()[1]
    )
    assert locked_kib > 0
