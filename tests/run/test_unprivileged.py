"""An unprivileged user gets secrets too, through a user namespace mapping them to themselves."""

from __future__ import annotations

import shlex
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.root  # needs root to become 'nobody'


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory 'nobody' can read and write (pytest's tmp_path is root-only)."""
    with tempfile.TemporaryDirectory(prefix="secretd-nobody-") as name:
        path = Path(name)
        path.chmod(0o777)
        yield path


def as_nobody(shared: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = " ".join(shlex.quote(a) for a in (sys.executable, "-m", "secretd", *args))
    script = (
        f"cd {shlex.quote(str(shared))} && SECRETD_STATE_DIR={shared}/state "
        f"SECRETD_RUNTIME_DIR={shared}/run XDG_CONFIG_HOME={shared}/config {command}"
    )
    return subprocess.run(
        ["su", "nobody", "-s", "/bin/sh", "-c", script], capture_output=True, text=True, timeout=60
    )


def readable(directory: Path, text: str) -> Path:
    """A value file 'nobody' can read, for a ``file:`` reference."""
    path = directory / "value"
    path.write_text(text)
    path.chmod(0o644)
    return path


def test_nobody_gets_files_in_a_user_namespace(shared_dir: Path) -> None:
    value = readable(shared_dir, "for-nobody")
    result = as_nobody(
        shared_dir,
        "run",
        "--secret",
        f"source=file:{value},target=k,mode=0400",
        "--",
        "sh",
        "-c",
        "id -u; stat -c '%a %u' /run/secrets/k; cat /run/secrets/k",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["65534", "400", "65534", "for-nobody"]


def test_nobody_cannot_ask_for_another_owner(shared_dir: Path) -> None:
    value = readable(shared_dir, "x")
    result = as_nobody(
        shared_dir, "run", "--secret", f"source=file:{value},target=k,uid=0", "--", "true"
    )
    assert result.returncode == 2
    assert "only uid 65534 gid 65534 exist in an unprivileged sandbox" in result.stderr


def test_nobody_sees_a_readonly_tmpfs(shared_dir: Path) -> None:
    result = as_nobody(
        shared_dir,
        "run",
        "--",
        "sh",
        "-c",
        "touch /run/secrets/x 2>&1; grep ' /run/secrets ' /proc/self/mounts | tail -1",
    )
    assert "Read-only file system" in result.stdout
    assert " tmpfs ro," in result.stdout


def test_nobody_gets_a_pid_namespace_and_read_only_mounts(shared_dir: Path) -> None:
    value = readable(shared_dir, "sub")
    result = as_nobody(
        shared_dir,
        "run",
        "--secret",
        f"source=file:{value},target=/run/secrets/sub/k",
        "--",
        "sh",
        "-c",
        "cat /proc/1/comm; ls /proc | grep -c '^[0-9]*$'; cat /run/secrets/sub/k; echo; "
        "touch /run/secrets/sub/x 2>&1; grep ' /run/secrets' /proc/self/mountinfo",
    )
    assert result.returncode == 0, result.stderr
    init, count, content, touched, *mounts = result.stdout.splitlines()
    assert init in ("tini", "tini-static") and content == "sub"
    assert int(count) <= 4
    assert "Read-only file system" in touched
    assert len(mounts) == 1
    assert {"ro", "nosuid", "nodev", "noexec"} <= set(mounts[0].split()[5].split(","))
