"""``--config`` and ``--template`` in an image run by runc: Swarm's placement, the image's
own files kept, the host untouched."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Runner
from tests.support.image_configs import READ_BACK_LINES, config_args, mount_options, read_back

pytestmark = pytest.mark.root


def test_configs_at_absolute_targets_and_with_swarm_defaults(
    secretd: Runner, image: str, tmp_path: Path
) -> None:
    host_etc = sorted(p.name for p in Path("/etc").iterdir())
    flags = config_args(tmp_path, "/usr/local/bin/hello.sh")
    extra = f"source=file:{tmp_path}/app.conf,target=/etc/extra.conf"
    result = secretd("run", "--rm", *flags, "--config", extra, image, *read_back("hello.sh"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:8] == READ_BACK_LINES
    mounts = mount_options(lines[8:])
    assert {"ro", "nosuid", "nodev"} <= mounts["/etc/app"] and "noexec" not in mounts["/etc/app"]
    assert {"ro", "noexec"} <= mounts["/run/secrets"] and {"ro", "noexec"} <= mounts["/etc/db"]
    assert sorted(p.name for p in Path("/etc").iterdir()) == host_etc


def test_a_config_colliding_with_a_secret_starts_nothing(
    secretd: Runner, image: str, tmp_path: Path
) -> None:
    (tmp_path / "v").write_text("v")
    result = secretd(
        "run", "--rm", "--secret", f"a=file:{tmp_path}/v",
        "--config", f"source=file:{tmp_path}/v,target=/run/secrets/a", image, "true",
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.startswith("secretd: secret 'a' and config 'a' both target")
    assert secretd("ps", "-a", "-q").stdout == ""
