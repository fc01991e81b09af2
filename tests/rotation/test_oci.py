"""A detached runc container (``--runtime oci -d``) started through the daemon is kept
by it, as a Docker one is: ``--refresh`` is allowed, ``secretd secret rotate`` reaches its
files, and once ``secretd rm -f`` removes it the daemon lets it go."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.daemon.conftest import Daemon, World, client
from tests.oci.conftest import _needs_runc, busybox_tar, rootfs_layer  # noqa: F401 - fixtures
from tests.support.waiting import wait_for

pytestmark = pytest.mark.root


def test_the_daemon_keeps_a_detached_runc_container(
    world: World,
    daemon: Daemon,
    busybox_tar: Path,  # noqa: F811
) -> None:
    loaded = subprocess.run(
        [sys.executable, "-m", "secretd", "image", "load", "-i", str(busybox_tar)],
        env=world.env(), cwd=world.root, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr
    assert client(world, "secret", "create", "oci_token", "-", input="oci-1").returncode == 0
    started = client(
        world, "run", "-d", "--runtime", "oci", "--refresh", "1s", "--on-change", "signal:HUP",
        "--secret", "oci_token", "busybox", "sh", "-c",
        'trap "echo HUP >> /tmp/hups" HUP; while :; do sleep 0.2; done',
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    cid = started.stdout.strip()
    root = str(world.runtime / "runc")

    def inside(*argv: str) -> str:
        done = subprocess.run(["runc", "--root", root, "exec", cid, *argv],
                              capture_output=True, text=True, timeout=30)  # fmt: skip
        return done.stdout

    try:
        assert inside("cat", "/run/secrets/oci_token") == "oci-1"
        assert client(world, "secret", "rotate", "oci_token", "-", input="oci-2").returncode == 0
        wait_for(lambda: inside("cat", "/run/secrets/oci_token") == "oci-2", "the rotation")
        wait_for(lambda: inside("cat", "/tmp/hups") == "HUP\n", "one SIGHUP in the container")
        assert cid[:12] in client(world, "ps").stdout
    finally:
        removed = client(world, "rm", "-f", cid)
    assert removed.returncode == 0, removed.stderr
    wait_for(lambda: cid[:12] not in client(world, "ps").stdout, "the daemon to let it go", 20)
