"""Every mount secretd adds to the command's view is read-only, nosuid, nodev, noexec."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.root

FLAGS = {"ro", "nosuid", "nodev", "noexec"}
MOUNTINFO = "cat /proc/self/mountinfo"


def mounts_under(mountinfo: str, top: str) -> dict[str, tuple[set[str], set[str]]]:
    """``{mount point: (per-mount options, filesystem options)}`` at or below ``top``
    (the last mount at a point is the one a path reaches)."""
    found = {}
    for line in mountinfo.splitlines():
        fields, _, fs = line.partition(" - ")
        point, options = fields.split()[4], fields.split()[5]
        if point == top or point.startswith(top.rstrip("/") + "/"):
            found[point] = (set(options.split(",")), set(fs.split()[2].split(",")))
    return found


def test_absolute_target_in_the_secrets_dir_stays_read_only(secretd, secret_file) -> None:
    value = secret_file("in-sub")
    script = (
        f"{MOUNTINFO}; echo ---; cat /run/secrets/sub/k; echo; "
        "touch /run/secrets/new /run/secrets/sub/new 2>&1"
    )
    result = secretd(
        "run",
        "--secret",
        f"source=file:{value},target=/run/secrets/sub/k",
        "--secret",
        f"a=file:{value}",
        "--",
        "sh",
        "-c",
        script,
    )
    mountinfo, _, rest = result.stdout.partition("---\n")
    mounts = mounts_under(mountinfo, "/run/secrets")
    assert list(mounts) == ["/run/secrets"], "the file belongs to the secrets tmpfs"
    options, fs_options = mounts["/run/secrets"]
    assert FLAGS <= options
    assert "noswap" in fs_options and any(o.startswith("size=") for o in fs_options)
    lines = rest.splitlines()
    assert lines[0] == "in-sub"
    assert len(lines) == 3 and all("Read-only file system" in line for line in lines[1:])


def test_shadowed_directory_for_an_absolute_target_is_read_only(
    secretd, secret_file, tmp_path: Path
) -> None:
    value = secret_file("deep")
    target = tmp_path / "etc" / "app" / "key.pem"
    result = secretd(
        "run",
        "--secret",
        f"source=file:{value},target={target}",
        "--",
        "sh",
        "-c",
        f"{MOUNTINFO}; echo ---; cat {target}; echo; touch {tmp_path}/new {target.parent}/new 2>&1",
    )
    mountinfo, _, rest = result.stdout.partition("---\n")
    mounts = mounts_under(mountinfo, str(tmp_path))
    # the shadow, and the secret's own directory (missing on the host: bound whole)
    for point in (str(tmp_path), str(target.parent)):
        assert FLAGS <= mounts[point][0], point
    lines = rest.splitlines()
    assert lines[0] == "deep"
    assert len(lines) == 3 and all("Read-only file system" in line for line in lines[1:])
    assert not target.parent.exists()
