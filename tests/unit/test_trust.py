"""``trust.check_directory``: which paths only root or the caller (root here) can change."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from secretd import trust
from secretd.errors import Untrusted

pytestmark = pytest.mark.root

NOBODY = 65534


@pytest.fixture
def base() -> Iterator[Path]:
    """A root-owned 0755 directory in /tmp (sticky, root's: fine along the way)."""
    with tempfile.TemporaryDirectory(prefix="secretd-trust-") as name:
        path = Path(name)
        path.chmod(0o755)
        yield path


def refused(path: Path) -> str:
    with pytest.raises(Untrusted) as caught:
        trust.check_directory(path)
    return caught.value.message


def test_root_owned_directories_below_sticky_tmp_are_trusted(base: Path) -> None:
    (base / "a" / "b").mkdir(parents=True)
    trust.check_directory(base / "a" / "b")
    trust.check_directory(base / "a" / "b" / ".." / "b" / ".")


def test_a_sticky_world_writable_directory_is_never_the_last(base: Path) -> None:
    assert refused(Path("/tmp")) == "/tmp is writable by others (mode 1777)"
    assert refused(base / "..") == "/tmp is writable by others (mode 1777)"


def test_group_writable_and_foreign_directories_are_refused(base: Path) -> None:
    (base / "g").mkdir()
    (base / "g").chmod(0o775)
    assert refused(base / "g") == f"{base}/g is writable by its group (mode 0775)"
    (base / "n" / "inner").mkdir(parents=True)
    os.chown(base / "n", NOBODY, NOBODY)
    assert (
        refused(base / "n" / "inner")
        == f"{base}/n belongs to uid 65534 (nobody), not to you or root"
    )


def test_links_on_the_way_are_followed_when_root_made_them(base: Path) -> None:
    (base / "real" / "run").mkdir(parents=True)
    (base / "link").symlink_to("real")
    (base / "up").symlink_to("real/run/..")
    trust.check_directory(base / "link" / "run")
    trust.check_directory(base / "up" / "run")
    assert refused(base / "link") == f"{base}/link is a symbolic link"


def test_a_link_another_user_made_is_refused(base: Path) -> None:
    (base / "real" / "sub").mkdir(parents=True)
    (base / "theirs").symlink_to(base / "real")
    os.chown(base / "theirs", NOBODY, NOBODY, follow_symlinks=False)
    assert refused(base / "theirs" / "sub") == (
        f"{base}/theirs is a symbolic link made by uid 65534 (nobody)"
    )


def test_a_missing_directory_is_no_daemon_not_an_attack(base: Path) -> None:
    with pytest.raises(FileNotFoundError):
        trust.check_socket(base / "absent" / "secretd.sock")


def test_runtime_dir_is_created_private_and_refused_when_foreign(base: Path) -> None:
    made = trust.runtime_dir(base / "rt")
    assert made.stat().st_mode & 0o777 == 0o755  # root's: other users reach its socket
    os.chown(made, NOBODY, NOBODY)
    with pytest.raises(Untrusted) as caught:
        trust.runtime_dir(made)
    assert caught.value.line() == (
        f"refusing the runtime directory {made}: {made} belongs to uid 65534 (nobody), not "
        "to you or root: set XDG_RUNTIME_DIR or SECRETD_RUNTIME_DIR to a directory of your own"
    )
