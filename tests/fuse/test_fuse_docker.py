"""``--mount-type fuse --runtime docker``: the container gets a directory bind of the FUSE
mount, the kernel enforces modes inside it, and nothing is left once the run ends."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Runner
from tests.fuse.conftest import VALUE, access_log, fuse_mounts
from tests.support.dockerd import IMAGE, Dockerd, docker_env, dockerd  # noqa: F401 - fixtures
from tests.support.engines import mounts_left, unmount_leftovers  # noqa: F401 - the fixture

pytestmark = [pytest.mark.fuse, pytest.mark.docker, pytest.mark.root]


def test_a_container_reads_its_fuse_files_with_modes_enforced(
    secretd: Runner,
    value_file: Path,
    clean_environ: dict[str, Path],
    docker_env: Dockerd,  # noqa: F811
) -> None:
    script = (
        "stat -c '%a %u %s %n' /run/secrets/k /run/secrets/open;"
        "grep ' /run/secrets ' /proc/mounts | cut -d' ' -f3,4;"
        f'[ "$(cat /run/secrets/open)" = {VALUE} ] && echo same;'
        "su nobody -s /bin/sh -c 'wc -c </run/secrets/open; cat /run/secrets/k' 2>/dev/null"
        " || echo refused"
    )
    done = secretd(
        "run", "--runtime", "docker", "--rm", "--mount-type", "fuse",
        "--secret", f"source=file:{value_file},target=k,mode=0400",
        "--secret", f"source=file:{value_file},target=open",
        IMAGE, "sh", "-c", script,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:2] == [
        f"400 0 {len(VALUE)} /run/secrets/k",
        f"444 0 {len(VALUE)} /run/secrets/open",
    ]
    fstype, options = lines[2].split()
    assert fstype == "fuse.secretd" and options.split(",")[0] == "ro"
    assert lines[3:] == ["same", str(len(VALUE)), "refused"]
    opens = [e for e in access_log(clean_environ["state"]) if e["event"] == "fuse-open"]
    assert {e["file"] for e in opens} >= {"open"}
    assert fuse_mounts(clean_environ["runtime"]) == []
    assert mounts_left(clean_environ["runtime"]) == []
