"""Rotation reaches a FUSE file at its next open: ``secretd secret rotate`` against a run
polling the local store (``--refresh 1s``); the rotation is in the access log."""

from __future__ import annotations

import os
import subprocess
import sys
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
        import time

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
