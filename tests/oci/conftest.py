"""Fixtures for the integrated oci runtime: real runc, real overlayfs, real tmpfs.

Images are built from Debian's busybox-static (tests/support/busybox.py); each test loads
them into its own state directory. After every test, nothing may be left: no mount under
the test's directories and no runc container in its state root (anything found is taken
down so the machine stays clean, and the test fails).
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import Runner
from tests.support import busybox


@pytest.fixture(autouse=True)
def _needs_runc() -> None:
    if shutil.which("runc") is None or not busybox.available():
        pytest.fail("runc and busybox-static are missing: run make setup (tools/setup-host.sh)")


@pytest.fixture(scope="session")
def rootfs_layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return busybox.rootfs_tar(tmp_path_factory.mktemp("layers") / "rootfs.tar")


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory: pytest.TempPathFactory, rootfs_layer: Path) -> Path:
    return busybox.docker_archive(tmp_path_factory.mktemp("images") / "busybox.tar", [rootfs_layer])


@pytest.fixture
def image(secretd: Runner, busybox_tar: Path) -> str:
    """``busybox`` loaded into this test's image store."""
    result = secretd("image", "load", "-i", str(busybox_tar))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Loaded image: busybox:latest\n"
    return "busybox"


@pytest.fixture
def secret(tmp_path: Path) -> Callable[[str, str], str]:
    """``secret(name, value)`` -> a ``--secret`` reference to a file holding ``value``."""

    def make(name: str, value: str) -> str:
        path = tmp_path / "values" / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(value)
        return f"{name}=file:{path}"

    return make


def mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as fh:
        points = [line.split()[4] for line in fh]
    return [p for p in points if p.startswith(str(path) + "/")]


@pytest.fixture(autouse=True)
def nothing_left(clean_environ: dict[str, Path], tmp_path: Path) -> Iterator[None]:
    yield
    root = clean_environ["runtime"] / "runc"
    running = []
    if root.is_dir():
        running = [entry.name for entry in root.iterdir()]
        for name in running:
            subprocess.run(["runc", "--root", str(root), "delete", "-f", name], check=False)
    leftovers = mounts_under(tmp_path)
    for point in sorted(leftovers, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False)
    assert not running, f"runc containers left behind: {running}"
    assert not leftovers, f"mounts left behind: {leftovers}"


Entry = tuple[str, bytes, str]  # (name, tar type, data or link target)


def layer_tar(path: Path, entries: list[Entry], end: bool = True) -> Path:
    """A layer with exactly these members (type ``tarfile.REGTYPE``, ``SYMTYPE``, ...);
    ``end=False`` leaves out the end-of-archive blocks."""
    buffer = io.BytesIO()
    tar = tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT)
    for name, kind, content in entries:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.mtime = kind, 0o755 if kind == tarfile.DIRTYPE else 0o644, 0
        data = content.encode() if kind in (tarfile.REGTYPE,) else b""
        if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
            info.linkname = content
        if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
            info.devmajor, info.devminor = 1, 3
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    members_end = tar.offset
    tar.close()
    path.write_bytes(buffer.getvalue() if end else buffer.getvalue()[:members_end])
    return path


def run_ok(secretd: Runner, *args: str, **kwargs: object) -> str:
    result = secretd(*args, **kwargs)
    assert result.returncode == 0, result.stderr
    return result.stdout
