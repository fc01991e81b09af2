"""``--mount-type fuse --runtime podman``: the same directory bind as Docker's."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Runner
from tests.fuse.conftest import VALUE, fuse_mounts
from tests.podman.conftest import IMAGE, podman, podman_environ  # noqa: F401 - fixtures
from tests.support.engines import mounts_left, unmount_leftovers  # noqa: F401 - the fixture

pytestmark = [pytest.mark.fuse, pytest.mark.podman, pytest.mark.root]


def test_a_podman_container_reads_its_fuse_files(
    secretd: Runner, value_file: Path, clean_environ: dict[str, Path]
) -> None:
    done = secretd(
        "run", "--runtime", "podman", "--rm", "--mount-type", "fuse",
        "--secret", f"source=file:{value_file},target=k,mode=0400",
        IMAGE, "sh", "-c",
        f"stat -c '%a %s' /run/secrets/k; [ \"$(cat /run/secrets/k)\" = {VALUE} ] && echo same",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"400 {len(VALUE)}", "same"]
    assert fuse_mounts(clean_environ["runtime"]) == []
    assert mounts_left(clean_environ["runtime"]) == []
