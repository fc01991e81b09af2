"""Docker containers through the daemon. ``secretd secret rotate`` reaches a running
container; a detached one is kept by the daemon: its files rotated (``--refresh``,
``secretd secret rotate``), its leased certificate kept alive while it lives, and once
``docker rm -f`` removes it, the lease revoked and the mount removed (the destroy event,
or the daemon's own check)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.daemon.conftest import Daemon, World, client
from tests.rotation.conftest import Follower, reporter
from tests.support.dockerd import IMAGE, Dockerd, docker_env, dockerd  # noqa: F401 - fixtures
from tests.support.waiting import wait_for
from tests.vault.conftest import unique  # noqa: F401 - fixture
from tests.vault.servers import BaoServer, leases

pytestmark = [pytest.mark.root, pytest.mark.vault, pytest.mark.docker]

TLS = "{name}=vault:pki/issue/web?common_name=d.example.com&ttl={ttl}#certificate,private_key"
PREFIX = "pki/issue/web/"


def mounts_under(path: str) -> list[str]:
    with open("/proc/self/mounts") as fh:
        return [line.split()[1] for line in fh if line.split()[1].startswith(path)]


def test_the_daemon_keeps_a_detached_container_until_it_is_removed(
    world: World,
    bao_daemon: Daemon,
    openbao: BaoServer,
    dockerd: Dockerd,  # noqa: F811
) -> None:
    assert client(world, "secret", "create", "api_token", "-", input="det-1").returncode == 0
    before = leases(openbao, PREFIX)
    started = client(
        world, "run", "-d", "--runtime", "docker", "--refresh", "1s",
        "--secret", "api_token", "--secret", TLS.format(name="tls", ttl="4s"),
        "--secret", TLS.format(name="long", ttl="1h"), IMAGE, "sleep", "300",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    cid = started.stdout.strip()

    def inside(path: str) -> str:
        return dockerd("exec", cid, "cat", path, check=False)

    assert inside("/run/secrets/api_token") == "det-1"
    assert cid[:12] in client(world, "ps").stdout
    assert client(world, "secret", "rotate", "api_token", "-", input="det-2").returncode == 0
    wait_for(lambda: inside("/run/secrets/api_token") == "det-2", "the rotation inside", 30)
    first = inside("/run/secrets/tls/certificate")
    wait_for(
        lambda: inside("/run/secrets/tls/certificate") not in ("", first),
        "the certificate to be issued anew before its 4 s lease ends",
        20,
    )
    held = leases(openbao, PREFIX) - before
    assert len(held) == 2, "a live lease for each certificate, the replaced one given back"
    runtime = str(world.runtime)
    assert len(mounts_under(runtime)) == 1
    dockerd("rm", "-f", cid)
    wait_for(lambda: mounts_under(runtime) == [], "the destroy event to remove the mount", 20)
    # the 1 h lease cannot have ended by itself: it was revoked
    wait_for(lambda: leases(openbao, PREFIX) <= before, "the leases to be revoked", 20)
    assert "det-2" not in bao_daemon.logs()
    assert not os.path.exists(f"{runtime}/mounts") or os.listdir(f"{runtime}/mounts") == []


def test_a_detached_containers_failing_provider_shows_in_ps_and_its_mount_goes_with_it(
    world: World,
    daemon: Daemon,
    dockerd: Dockerd,  # noqa: F811
) -> None:
    """The default test daemon watches no engine (``engines = []``): the container's
    upkeep notices it is gone, and removes its mount (as ``secretd prune`` would)."""
    started = client(
        world, "run", "-d", "--runtime", "docker", "--secret", "source=api_key,refresh=1s",
        IMAGE, "sleep", "300",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    cid = started.stdout.strip()
    source = world.root / "api_key.txt"
    source.rename(world.root / "away.txt")

    def row() -> str:
        return next(
            (line for line in client(world, "ps").stdout.splitlines() if cid[:12] in line), ""
        )

    wait_for(lambda: "stale since" in row(), "ps to show the container as stale", 30)
    (world.root / "away.txt").rename(source)
    wait_for(lambda: row() and "stale" not in row(), "the provider to recover", 30)
    runtime = str(world.runtime)
    assert len(mounts_under(runtime)) == 1
    dockerd("rm", "-f", cid)
    wait_for(lambda: mounts_under(runtime) == [], "the daemon to remove the mount", 20)


def test_secret_rotate_reaches_a_running_docker_container(
    world: World,
    daemon: Daemon,
    dockerd: Dockerd,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The issue's Done-when, through the daemon: a foreground container, no refresh."""
    assert client(world, "secret", "create", "api_key2", "-", input="ctr-1").returncode == 0
    out = tmp_path / "out"
    out.mkdir()
    follower = Follower(out / "seen.log")
    script = reporter(Path("/out/seen.log"), "/run/secrets/api_key2")
    argv = ["run", "--runtime", "docker", "--rm", "-v", f"{out}:/out", "--secret", "api_key2"]
    run = subprocess.Popen(
        [sys.executable, "-m", "secretd", *argv, IMAGE, "sh", "-c", script],
        cwd=world.root, env=world.env(SECRETD_HOST=world.host), text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        follower.wait_value("ctr-1", timeout=60)
        rotated = client(world, "secret", "rotate", "api_key2", "-", input="ctr-2")
        assert rotated.returncode == 0, rotated.stderr
        follower.wait_value("ctr-2", timeout=30)
    finally:
        run.terminate()
        run.communicate(timeout=60)
