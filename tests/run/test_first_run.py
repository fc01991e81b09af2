"""`secretd run --secret api_key app`, as the README's first line reads: without `--` and
without --runtime, a program on PATH runs on the host unless an image has that name."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support import busybox

pytestmark = pytest.mark.root


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A program ``app`` on PATH that prints its secret."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    program = bin_dir / "app"
    program.write_text("#!/bin/sh\nprintf 'app sees %s\\n' \"$(cat /run/secrets/api_key)\"\n")
    program.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return program


def test_program_on_path_runs_in_the_sandbox(secretd, secret_file, app: Path) -> None:
    result = secretd("run", "--secret", f"api_key=file:{secret_file('s3cr3t')}", "app")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == "app sees s3cr3t\n"


def test_path_to_an_executable_runs_in_the_sandbox(secretd, secret_file, app: Path) -> None:
    result = secretd("run", "--secret", f"api_key=file:{secret_file('v')}", str(app))
    assert result.stdout == "app sees v\n"


def test_neither_image_nor_program_shows_where_the_dashes_go(secretd, secret_file) -> None:
    ref = f"api_key=file:{secret_file('v')}"
    result = secretd("run", "--secret", ref, "no-such-app-xyz", "--flag")
    assert result.returncode == 2
    assert result.stderr == (
        "secretd: 'no-such-app-xyz' is neither an image here nor a program on PATH: "
        f"for a host command, write: secretd run --secret {ref} -- no-such-app-xyz --flag; "
        "for an image, pull it first\n"
    )


def test_a_local_image_wins_over_a_program_of_that_name(secretd, tmp_path: Path) -> None:
    """busybox is on the host's PATH too; once loaded as an image, the image runs."""
    probe = ("sh", "-c", "cat /run/image-owned 2>/dev/null || echo host")
    assert secretd("run", "busybox", *probe).stdout == "host\n"
    layer = busybox.rootfs_tar(tmp_path / "rootfs.tar")
    archive = busybox.docker_archive(tmp_path / "busybox.tar", [layer])
    assert secretd("image", "load", "-i", str(archive)).returncode == 0
    result = secretd("run", "busybox", *probe)
    assert result.stdout == "this file belongs to the image\n", result.stderr
