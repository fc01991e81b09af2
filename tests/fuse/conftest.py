"""FUSE tests: real /dev/fuse, libfuse 2 through fusepy, the real CLI, sandbox and daemon.

Secrets come from ``file:`` sources in the test's directory; each test's state and
runtime directories are its own (tests/conftest.py), so the access log is too.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

VALUE = "fuse-canary-7c1d"
pytestmark = [pytest.mark.fuse, pytest.mark.root]


def fuse_usable() -> bool:
    return os.path.exists("/dev/fuse") and os.geteuid() == 0


@pytest.fixture(autouse=True)
def _needs_fuse() -> None:
    if not fuse_usable():
        pytest.skip("needs /dev/fuse and root")


@pytest.fixture(autouse=True)
def _unmount_leftovers(clean_environ: dict[str, Path]) -> Iterator[None]:
    """After a test, even a failed one, no FUSE mount of it stays (tmp dirs can go)."""
    yield
    for path in fuse_mounts(clean_environ["runtime"]):
        subprocess.run(["umount", "-l", path], check=False)


@pytest.fixture
def value_file(tmp_path: Path) -> Path:
    path = tmp_path / "value.txt"
    path.write_text(VALUE)
    return path


def access_log(state: Path) -> list[dict[str, object]]:
    path = state / "access.log"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def fuse_mounts(under: Path) -> list[str]:
    """Mount points of FUSE filesystems at or below ``under`` in this namespace."""
    with open("/proc/self/mounts") as fh:
        return [
            line.split()[1]
            for line in fh
            if line.split()[2].startswith("fuse.secretd") and line.split()[1].startswith(str(under))
        ]


@contextlib.contextmanager
def background_run(
    ready: Path, *args: str, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``secretd run ARGS`` in the background until the command has touched ``ready``;
    killed when the block ends if it is still there."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "secretd", "run", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the command did not start"
            time.sleep(0.02)
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()  # secretd stops the command and takes its mount down
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        proc.communicate()
