"""Polling a ``file:`` secret is cheap: an open and an ``fstat`` by safeopen's rules; the
file is read and hashed only when its stamp (inode, size, mtime, ctime) changed, in
process and through the daemon. The kernel's count of bytes a process read says so."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from secretd.backends import file as file_backend
from secretd.backends.file import FileProvider
from secretd.errors import SecretNotFound
from secretd.refs import parse_ref
from tests.daemon.conftest import Daemon, World
from tests.support.waiting import wait_for

BIG = 450 * 1024  # a read of the file shows in the count; a stat does not


def read_bytes(pid: int | str = "self") -> int:
    """Bytes the process has read through read(2)/pread(2) so far (``rchar``)."""
    with open(f"/proc/{pid}/io") as fh:
        return int(next(line for line in fh if line.startswith("rchar:")).split()[1])


@pytest.fixture
def settled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files this test writes count as settled at once (see ``RACY_NS``)."""
    monkeypatch.setattr(file_backend, "RACY_NS", -(10**12), raising=False)


def test_an_unchanged_file_is_not_read_again(tmp_path: Path, settled: None) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(b"a" * BIG)
    ref = parse_ref(f"source=file:{path},target=big")
    provider = FileProvider()
    first = provider.version(ref)
    before = read_bytes()
    assert provider.version(ref) == first
    assert read_bytes() - before < BIG // 4
    assert first == provider.get(ref).version  # what rotation compares a poll with


def test_a_change_of_content_size_or_inode_gives_a_new_version(
    tmp_path: Path, settled: None
) -> None:
    path = tmp_path / "key"
    path.write_bytes(b"one")
    ref = parse_ref(f"source=file:{path},target=key")
    provider = FileProvider()
    versions = [provider.version(ref)]
    stat = path.stat()
    path.write_bytes(b"two")  # same size; mtime put back: ctime still moves
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    versions.append(provider.version(ref))
    path.write_bytes(b"three")
    versions.append(provider.version(ref))
    (tmp_path / "new").write_bytes(b"four!")
    (tmp_path / "new").rename(path)
    versions.append(provider.version(ref))
    assert len(set(versions)) == 4
    path.unlink()
    with pytest.raises(SecretNotFound):
        provider.version(ref)


def test_a_file_changed_just_now_is_read_at_each_poll(tmp_path: Path) -> None:
    """A stamp within the file times' granularity of a write could miss the next write
    of the same size: it is not trusted until it is a while old."""
    path = tmp_path / "key"
    path.write_bytes(b"a" * BIG)
    ref = parse_ref(f"source=file:{path},target=key")
    provider = FileProvider()
    provider.version(ref)
    before = read_bytes()
    provider.version(ref)
    assert read_bytes() - before >= BIG


def test_the_daemon_polls_a_file_without_reading_it(
    world: World, daemon: Daemon, tmp_path: Path
) -> None:
    source = world.root / "big.bin"
    source.write_bytes(b"b" * BIG)
    written = time.monotonic()
    seen = tmp_path / "seen"
    os.utime(source, ns=(time.time_ns() - 10**10,) * 2)  # mtime settled; ctime is now
    run = subprocess.Popen(
        [sys.executable, "-m", "secretd", "run", "--secret",
         f"source=file:{source},target=big,refresh=1s", "--",
         "sh", "-c", f"wc -c < /run/secrets/big > {seen}; exec sleep 60"],
        cwd=world.root, env=world.env(SECRETD_HOST=world.host),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(lambda: seen.exists() and seen.read_text().strip() == str(BIG), "the run")
        # past the racy window, and one poll more to keep the stamp
        time.sleep(max(0.0, written + file_backend.RACY_NS / 1e9 + 1.2 - time.monotonic()))
        before = read_bytes(daemon.pid)
        time.sleep(2.5)  # two polls or more: each would read it whole
        assert read_bytes(daemon.pid) - before < BIG
    finally:
        run.terminate()
        run.wait(30)
