"""Replacing files while a reader reads them: never a half-written file, never a mix of
two versions of one tree (a certificate with the other version's key)."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from secretd.mount.atomic import write_files
from secretd.spec import SecretFile

ROUNDS = 400


@pytest.fixture
def base(tmp_path: Path) -> Path:
    (tmp_path / "mnt").mkdir()
    return tmp_path / "mnt"


@pytest.fixture
def root(base: Path) -> Iterator[int]:
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    yield fd
    os.close(fd)


def tls(version: int, group: str | None) -> list[SecretFile]:
    """A certificate and key whose contents say which version they belong to."""
    body = f"version-{version}-" + "x" * 4000
    return [
        SecretFile("tls/cert.pem", f"cert {body}".encode(), mode=0o444, group=group),
        SecretFile("tls/key.pem", f"key {body}".encode(), mode=0o400, group=group),
    ]


def read_pairs(base: Path, stop: threading.Event, seen: list[tuple[str, str]]) -> None:
    """Read both files through one directory handle, as a server loading a pair does."""
    while not stop.is_set():
        try:
            fd = os.open(base / "tls", os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            continue
        try:
            with open(os.open("cert.pem", os.O_RDONLY, dir_fd=fd), "rb") as cert:
                first = cert.read().split(b" ", 1)[1][:12].decode()
            with open(os.open("key.pem", os.O_RDONLY, dir_fd=fd), "rb") as key:
                second = key.read().split(b" ", 1)[1][:12].decode()
        except FileNotFoundError:
            continue  # the old set is being removed after a swap: read again
        finally:
            os.close(fd)
        seen.append((first, second))


def test_a_tree_is_replaced_as_a_whole(root: int, base: Path) -> None:
    write_files(root, tls(0, "tls"))
    stop, seen = threading.Event(), []
    reader = threading.Thread(target=read_pairs, args=(base, stop, seen))
    reader.start()
    try:
        for version in range(1, ROUNDS):
            write_files(root, tls(version, "tls"))
    finally:
        stop.set()
        reader.join()
    assert seen, "the reader never read"
    assert [pair for pair in seen if pair[0] != pair[1]] == []
    assert sorted(os.listdir(base)) == ["tls"]  # no staging directory left behind
    assert (
        (base / "tls" / "cert.pem").read_bytes().startswith(f"cert version-{ROUNDS - 1}-".encode())
    )
    assert stat.S_IMODE((base / "tls" / "key.pem").stat().st_mode) == 0o400


def test_files_that_leave_a_tree_are_gone(root: int, base: Path) -> None:
    write_files(root, tls(1, "tls"))
    write_files(root, tls(2, "tls")[:1])
    assert os.listdir(base / "tls") == ["cert.pem"]


def test_a_single_file_is_never_seen_half_written(root: int, base: Path) -> None:
    value = [b"a" * 200_000, b"b" * 200_000]
    write_files(root, [SecretFile("big", value[0])])
    stop, torn = threading.Event(), []

    def read() -> None:
        while not stop.is_set():
            data = (base / "big").read_bytes()
            if data not in value:
                torn.append(len(data))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for index in range(200):
            write_files(root, [SecretFile("big", value[index % 2])])
    finally:
        stop.set()
        reader.join()
    assert torn == []
