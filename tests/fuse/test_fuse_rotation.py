"""Rotation reaches a FUSE file at its next open: ``secretd secret rotate`` against a run
polling the local store (``--refresh 1s``); the rotation is in the access log."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from secretd.mount.fuse import FuseMount
from secretd.spec import SecretFile, SecretMount
from tests.conftest import Runner
from tests.fuse.conftest import access_log, background_run, fuse_mounts

pytestmark = [pytest.mark.fuse, pytest.mark.root]


def test_secret_rotate_is_read_at_the_next_open(
    secretd: Runner, tmp_path: Path, clean_environ: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRETD_PASSPHRASE", "correct horse")
    assert secretd("secret", "create", "api_key", "-", input="old-value-0001").returncode == 0
    ready, seen = tmp_path / "ready", tmp_path / "seen"
    loop = (
        f"touch {ready}; while :; do cat /run/secrets/api_key >{seen}.tmp;"
        f" stat -c ' %s' /run/secrets/api_key >>{seen}.tmp; mv {seen}.tmp {seen}; sleep 0.2; done"
    )
    with background_run(
        ready, "--no-daemon", "--refresh", "1s", "--mount-type", "fuse", "--secret", "api_key",
        "--", "sh", "-c", loop, env=dict(os.environ),
    ):  # fmt: skip
        rotated = secretd("secret", "rotate", "api_key", "-", input="a-new-value-0002")
        assert rotated.returncode == 0, rotated.stderr
        deadline = 15.0
        start = time.monotonic()
        while not (seen.exists() and seen.read_text().startswith("a-new-value-0002")):
            assert time.monotonic() - start < deadline, seen.read_text()
            time.sleep(0.1)
    events = access_log(clean_environ["state"])
    assert any(e["event"] == "rotate" and e["secret"] == "api_key" for e in events)
    assert fuse_mounts(clean_environ["runtime"]) == []


def test_a_tree_secret_is_replaced_whole(tmp_path: Path) -> None:
    """A set (a certificate and its key) swaps as one: files it no longer has are gone."""
    old = (SecretFile("tls/cert", b"c1", group="tls"), SecretFile("tls/key", b"k1", group="tls"))
    served = FuseMount.create(tmp_path / "rt", SecretMount(old, 0))
    try:
        tls = served.secrets_path / "tls"
        assert sorted(os.listdir(tls)) == ["cert", "key"]
        served.update((SecretFile("tls/cert", b"c2", group="tls"),
                       SecretFile("tls/chain", b"ch2", group="tls")))  # fmt: skip
        probe = "import os,sys; d=sys.argv[1]; print(sorted(os.listdir(d)), open(d+'/cert').read())"
        shown = subprocess.run(
            [sys.executable, "-c", probe, str(tls)], capture_output=True, text=True, check=True
        )
        assert shown.stdout.split("]")[1].strip() == "c2"
        assert "'chain'" in shown.stdout and "'key'" not in shown.stdout
    finally:
        served.remove()


PAIR_READER = """
import os, sys, time
base, out, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
reads, end = [], time.monotonic() + seconds
while time.monotonic() < end:
    try:
        fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        reads.append("gone")
        continue
    try:
        parts = []
        for name in ("cert", "key"):
            f = os.open(name, os.O_RDONLY, dir_fd=fd)
            parts.append(os.read(f, 100).decode())
            os.close(f)
            time.sleep(0.0005)  # a server loading its pair does more between the two
        reads.append(" ".join(parts))
    finally:
        os.close(fd)
open(out, "w").write("\\n".join(reads))
"""


def test_a_set_read_through_one_directory_handle_is_never_torn(tmp_path: Path) -> None:
    """As on the tmpfs: the replaced set lives on for a handle opened before the swap."""

    def pair(version: int) -> tuple[SecretFile, ...]:
        return tuple(
            SecretFile(f"tls/{name}", f"{name}-{version:04d}".encode(), group="tls")
            for name in ("cert", "key")
        )

    served = FuseMount.create(tmp_path / "rt", SecretMount(pair(0), 0))
    out = tmp_path / "reads"
    try:
        reader = subprocess.Popen(
            [sys.executable, "-c", PAIR_READER, str(served.secrets_path / "tls"), str(out), "4"]
        )
        version = 0
        while reader.poll() is None:
            version += 1
            served.update(pair(version))
            time.sleep(0.01)
        assert reader.returncode == 0
    finally:
        served.remove()
    reads = out.read_text().splitlines()
    torn = [r for r in reads if r == "gone" or r.split()[0][-4:] != r.split()[1][-4:]]
    assert len(reads) > 200 and version > 50, (len(reads), version)
    assert torn == [], f"{len(torn)} of {len(reads)} reads torn or missing: {torn[:3]}"
