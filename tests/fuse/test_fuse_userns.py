"""An unprivileged user's FUSE mount, in the sandbox's user namespace: mounted through
the setuid fusermount when /dev/fuse is open to them (Debian's 0666), refused with the
fix in one line when it is not."""

from __future__ import annotations

import os
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fuse.conftest import fuse_mounts
from tests.run.test_unprivileged import as_nobody

pytestmark = [pytest.mark.fuse, pytest.mark.root]  # root, to become nobody and set the mode


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory of nobody's (pytest's tmp_path is root-only)."""
    with tempfile.TemporaryDirectory(prefix="secretd-fuse-nobody-") as name:
        path = Path(name)
        os.chown(path, 65534, 65534)
        (path / "value").write_text("for-nobody-fuse")
        (path / "value").chmod(0o644)
        yield path
        for mount in fuse_mounts(path):
            subprocess.run(["umount", "-l", mount], check=False)


@pytest.fixture
def dev_fuse_mode() -> Iterator[None]:
    """Put /dev/fuse's mode back as it was, whatever the test set."""
    mode = stat.S_IMODE(os.stat("/dev/fuse").st_mode)
    yield
    os.chmod("/dev/fuse", mode)


def test_nobody_reads_a_fuse_file_in_a_user_namespace(
    shared_dir: Path, dev_fuse_mode: None
) -> None:
    os.chmod("/dev/fuse", 0o666)
    result = as_nobody(
        shared_dir, "run", "--mount-type", "fuse", "--no-redact",
        "--secret", f"source=file:{shared_dir}/value,target=k,mode=0400",
        "--", "sh", "-c", "id -u; stat -c '%a %u %s' /run/secrets/k; cat /run/secrets/k; echo;"
        " grep ' /run/secrets ' /proc/self/mounts | cut -d' ' -f3",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "65534",
        "400",
        "65534",
        "15",
        "for-nobody-fuse",
        "fuse.secretd",
    ]
    assert fuse_mounts(shared_dir) == []
    log = (shared_dir / "state" / "access.log").read_text()
    assert '"comm":"cat","uid":65534' in log.replace(
        '"uid":65534,"comm":"cat"', '"comm":"cat","uid":65534'
    )


def test_dev_fuse_closed_to_the_user_is_one_line_exit_125(
    shared_dir: Path, dev_fuse_mode: None
) -> None:
    os.chmod("/dev/fuse", 0o600)
    marker = shared_dir / "started"
    result = as_nobody(
        shared_dir, "run", "--mount-type", "fuse", "--secret", f"k=file:{shared_dir}/value",
        "--", "touch", str(marker),
    )  # fmt: skip
    assert result.returncode == 125
    assert result.stderr.strip() == (
        "secretd: cannot use --mount-type fuse: /dev/fuse is not open to uid 65534: make it so "
        "(chmod 0666 /dev/fuse, Debian's default) or run through the daemon"
    )
    assert not marker.exists()
