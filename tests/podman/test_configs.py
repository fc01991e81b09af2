"""``--config`` in a Podman container: Swarm's placement, exec allowed for configs only."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Runner
from tests.podman.conftest import IMAGE, Podman
from tests.support.image_configs import CONF, DIGEST, replaced_while_running

pytestmark = [pytest.mark.podman, pytest.mark.root]


def test_configs_at_absolute_targets_and_with_swarm_defaults(
    secretd: Runner, podman: Podman, tmp_path: Path
) -> None:
    (tmp_path / "app.conf").write_bytes(CONF)
    (tmp_path / "hello.sh").write_bytes(b"#!/bin/sh\necho from-config\n")
    (tmp_path / "key").write_text("#!/bin/sh\necho ran-a-secret\n")
    done = secretd(
        "run", "--runtime", "podman", "--rm",
        "--config",
        f"source=file:{tmp_path}/app.conf,target=/etc/app/app.conf,uid=1000,gid=1001,mode=0440",
        "--config", f"app.conf=file:{tmp_path}/app.conf",
        "--config", f"source=file:{tmp_path}/hello.sh,target=/opt/bin/hello.sh,mode=0555",
        "--secret", f"source=file:{tmp_path}/key,target=key,mode=0555",
        IMAGE, "sh", "-c",
        "sha256sum /etc/app/app.conf /app.conf | cut -d' ' -f1; "
        "stat -c '%u %g %a' /etc/app/app.conf /app.conf; /opt/bin/hello.sh; "
        "/run/secrets/key 2>/dev/null || echo secret-not-run; "
        "test -f /etc/passwd && echo image-etc-kept",
        env={**podman.env()},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        DIGEST, DIGEST, "1000 1001 440", "0 0 444", "from-config", "secret-not-run",
        "image-etc-kept",
    ]  # fmt: skip


def test_a_replaced_absolute_target_is_seen_inside_a_running_container() -> None:
    """The image has no /etc/app, so it is bound whole (found with 'podman image mount'),
    and the new file is seen inside."""
    from secretd.config import load_config
    from secretd.runtime.engines.podman import PodmanRuntime

    runtime = PodmanRuntime.from_config(load_config())
    then = "; test -f /etc/passwd && echo kept"
    assert replaced_while_running(runtime, IMAGE, then) == (0, b"db-v2other-v1kept\n")
