"""``mount_type`` and ``[access_log]`` in the configuration: where each comes from, and
what a wrong value gets."""

from __future__ import annotations

import os
from pathlib import Path

from secretd import accesslog
from secretd.config import load_config
from tests.conftest import Runner


def test_info_shows_the_mount_type_and_its_origin(secretd: Runner, tmp_path: Path) -> None:
    assert "  mount_type = tmpfs  (default)" in secretd("info").stdout
    (tmp_path / "secretd.toml").write_text('mount_type = "fuse"\n')
    assert f"  mount_type = fuse  ({tmp_path / 'secretd.toml'})" in secretd("info").stdout


def test_a_wrong_mount_type_is_refused_naming_the_file(secretd: Runner, tmp_path: Path) -> None:
    (tmp_path / "secretd.toml").write_text('mount_type = "nfs"\n')
    result = secretd("info")
    assert result.returncode == 2
    assert f"mount_type in {tmp_path / 'secretd.toml'} is 'nfs'" in result.stderr
    assert '"tmpfs" or "fuse"' in result.stderr


def test_an_unknown_mount_type_from_the_environment_starts_nothing(
    secretd: Runner, tmp_path: Path
) -> None:
    marker = tmp_path / "started"
    result = secretd(
        "run", "--no-daemon", "--", "touch", str(marker),
        env={**os.environ, "SECRETD_MOUNT_TYPE": "nfs"},
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == "secretd: unknown mount type 'nfs': use one of tmpfs, fuse"
    assert not marker.exists()


def test_access_log_settings(tmp_path: Path) -> None:
    (tmp_path / "secretd.toml").write_text("[access_log]\nenabled = false\n")
    config = load_config(cwd=tmp_path)
    accesslog.configure_from(config)
    accesslog.record("run", run="x")
    assert not (config.state_dir / "access.log").exists()
    (tmp_path / "secretd.toml").write_text("[access_log]\nmax_bytes = 100\nkeep = 1\n")
    accesslog.configure_from(load_config(cwd=tmp_path))
    for _ in range(10):
        accesslog.record("run", run="sandbox-1234567890")
    accesslog.configure(None)
    assert sorted(p.name for p in config.state_dir.iterdir()) == ["access.log", "access.log.1"]
