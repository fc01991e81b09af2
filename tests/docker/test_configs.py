"""``--config``/``--template`` in a Docker container, and absolute targets that stay fresh:
a replaced file (a re-issued lease) is seen inside a running container."""

from __future__ import annotations

from pathlib import Path

import pytest

from secretd.config import load_config
from secretd.runtime.engines.docker import DockerRuntime
from tests.conftest import Runner
from tests.docker.conftest import IMAGE
from tests.support.image_configs import (
    READ_BACK_LINES,
    config_args,
    mount_options,
    read_back,
    replaced_while_running,
)

pytestmark = [pytest.mark.docker, pytest.mark.root]


def test_configs_templates_and_swarm_defaults_in_a_container(
    secretd: Runner, tmp_path: Path
) -> None:
    host_etc = sorted(p.name for p in Path("/etc").iterdir())
    flags = config_args(tmp_path, "/opt/bin/hello.sh")
    done = secretd(
        "run", "--runtime", "docker", "--rm", *flags, IMAGE, *read_back("/opt/bin/hello.sh")
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:8] == READ_BACK_LINES
    # Docker's binds take no noexec (docs/configs.md): read-only is what it keeps
    mounts = mount_options(lines[8:])
    assert all("ro" in mounts[point] for point in ("/etc/app", "/run/secrets", "/etc/db"))
    assert sorted(p.name for p in Path("/etc").iterdir()) == host_etc


def test_a_replaced_absolute_target_is_seen_inside_a_running_container() -> None:
    runtime = DockerRuntime.from_config(load_config())
    assert replaced_while_running(runtime, IMAGE) == (0, b"db-v2other-v1")
