"""Rotation into a running Docker container, and a detached container's lifecycle: listed
by ``secretd ps``, its secrets mount gone after ``docker rm -f`` and ``secretd prune``."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.rotation.conftest import Follower, reporter, runtime_mounts, settle
from tests.support.dockerd import IMAGE, Dockerd, docker_env, dockerd  # noqa: F401 - fixtures
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.root, pytest.mark.docker]

Start = Callable[..., subprocess.Popen[str]]
Secretd = Callable[..., subprocess.CompletedProcess[str]]


def test_a_store_rotation_reaches_a_running_container(
    secretd: Secretd, store_env: dict[str, str], background: Start, tmp_path: Path
) -> None:
    assert secretd("secret", "create", "api_key", "-", input="docker-1").returncode == 0
    shared = tmp_path / "shared"
    shared.mkdir()
    follower = Follower(shared / "seen.log")
    inside = Follower(Path("/out/seen.log"))
    background(
        "run", "--runtime", "docker", "--rm", "-v", f"{shared}:/out", "--on-change", "signal:HUP",
        "--secret", "source=api_key,refresh=1s", IMAGE, "sh", "-c", reporter(inside.log),
    )  # fmt: skip
    follower.wait_value("docker-1", timeout=60)
    assert secretd("secret", "rotate", "api_key", "-", input="docker-2").returncode == 0
    follower.wait_value("docker-2", timeout=30)
    wait_for(lambda: "HUP" in follower.lines(), "the signal", 30)  # sent after the swap
    settle(1)
    assert follower.lines().count("HUP") == 1


def test_a_detached_container_is_listed_and_its_mount_pruned_once_removed(
    secretd: Secretd,
    store_env: dict[str, str],
    dockerd: Dockerd,  # noqa: F811
    clean_environ: dict[str, Path],
) -> None:
    assert secretd("secret", "create", "api_key", "-", input="detached").returncode == 0
    started = secretd(
        "run", "-d", "--runtime", "docker", "--secret", "api_key", IMAGE, "sleep", "300"
    )
    assert started.returncode == 0, started.stderr
    cid = started.stdout.strip()
    listed = secretd("ps")
    assert cid[:12] in listed.stdout, listed.stdout + listed.stderr
    assert "api_key" in listed.stdout
    assert len(runtime_mounts(clean_environ)) == 1
    dockerd("rm", "-f", cid)
    pruned = secretd("prune")
    assert pruned.returncode == 0, pruned.stderr
    assert runtime_mounts(clean_environ) == []
    assert "Nothing to remove" not in pruned.stdout
    assert cid[:12] not in secretd("ps").stdout
