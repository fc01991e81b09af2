"""Start the real container engines for tests and benchmarks (no pytest here).

``dockerd`` gets a private data root, exec root, pid file and socket under a directory of
its own, so a system dockerd is never disturbed; podman gets its own containers.conf (runc,
cgroupfs, explicit ulimits: what it needs on this machine) and storage.
"""

from __future__ import annotations

import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from secretd.runtime.engines.endpoint import socket_answers
from tests.support.busybox import rootfs_tar

SYSTEM_DOCKER_SOCKET = "/var/run/docker.sock"
IMAGE = "busybox:local"
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1000:1000"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""


def start_dockerd(
    root: Path, timeout: float = 60, extra: Sequence[str] = ()
) -> tuple[subprocess.Popen[bytes], str]:
    """``dockerd --iptables=false --bridge=none`` in its own session (``extra``: more
    flags, say a TLS ``--host``); returns it and its ``unix://`` host once it answers.

    Raises:
        RuntimeError: it exited or did not answer in time (its log's tail is included).
    """
    sock, log = root / "docker.sock", root / "dockerd.log"
    argv = [
        "dockerd", "--iptables=false", "--bridge=none",
        f"--data-root={root / 'data'}", f"--exec-root={root / 'exec'}",
        f"--pidfile={root / 'dockerd.pid'}", f"--host=unix://{sock}", *extra,
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + timeout
    while not socket_answers(str(sock)):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            raise RuntimeError(f"dockerd did not start: {log.read_text()[-2000:]}")
        time.sleep(0.1)
    return proc, f"unix://{sock}"


def stop(proc: subprocess.Popen[bytes], grace: float = 30) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def podman_env(root: Path) -> dict[str, str]:
    """Write a containers.conf and a storage.conf under ``root``; the variables naming them."""
    conf, storage = root / "containers.conf", root / "storage.conf"
    conf.write_text(CONTAINERS_CONF + f'tmp_dir = "{root / "tmp"}"\n')
    storage.write_text(
        f'[storage]\ndriver = "overlay"\ngraphroot = "{root / "graph"}"\n'
        f'runroot = "{root / "run"}"\n'
    )
    return {"CONTAINERS_CONF": str(conf), "CONTAINERS_STORAGE_CONF": str(storage)}


def import_busybox(cli: str, env: dict[str, str]) -> None:
    """``docker|podman import`` the busybox root filesystem as busybox:local, if missing."""
    listed = subprocess.run(
        [cli, "images", "-q", IMAGE], env=env, capture_output=True, text=True, check=True
    )
    if listed.stdout.strip():
        return
    with tempfile.TemporaryDirectory() as tmp:
        tar = rootfs_tar(Path(tmp) / "rootfs.tar")
        subprocess.run([cli, "import", str(tar), IMAGE], env=env, capture_output=True, check=True)
