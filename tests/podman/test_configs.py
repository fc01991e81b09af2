"""``--config`` in a Podman container: Swarm's placement, exec allowed for configs only."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.conftest import Runner
from tests.podman.conftest import IMAGE, Podman

pytestmark = [pytest.mark.podman, pytest.mark.root]

CONF = b"listen 8080;\n\x00binary\xff tail\n"


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
    digest = hashlib.sha256(CONF).hexdigest()
    assert done.stdout.splitlines() == [
        digest, digest, "1000 1001 440", "0 0 444", "from-config", "secret-not-run",
        "image-etc-kept",
    ]  # fmt: skip
