"""``--mount-type fuse --runtime oci``: runc binds the FUSE mount like the tmpfs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Runner
from tests.fuse.conftest import VALUE, access_log, fuse_mounts
from tests.oci.conftest import _needs_runc, busybox_tar, image, rootfs_layer  # noqa: F401

pytestmark = [pytest.mark.fuse, pytest.mark.runc, pytest.mark.root]


def test_a_runc_container_reads_its_fuse_files(
    secretd: Runner,
    value_file: Path,
    clean_environ: dict[str, Path],
    image: str,  # noqa: F811
) -> None:
    done = secretd(
        "run", "--runtime", "oci", "--rm", "--mount-type", "fuse",
        "--secret", f"source=file:{value_file},target=k,mode=0440,gid=1000",
        "--secret", f"source=file:{value_file},target=/etc/app/k",
        image, "sh", "-c",
        "stat -c '%a %g %s' /run/secrets/k /etc/app/k;"
        f" [ \"$(cat /etc/app/k)\" = {VALUE} ] && echo same;"
        " grep ' /run/secrets ' /proc/mounts | cut -d' ' -f3",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    size = len(VALUE)
    assert done.stdout.splitlines() == [f"440 1000 {size}", f"444 0 {size}", "same", "fuse.secretd"]
    assert {e["file"] for e in access_log(clean_environ["state"]) if e["event"] == "fuse-open"} == {
        "/etc/app/k"
    }
    assert fuse_mounts(clean_environ["runtime"]) == []
