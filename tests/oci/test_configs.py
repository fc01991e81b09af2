"""``--config`` and ``--template`` in an image run by runc: Swarm's placement, the image's
own files kept, the host untouched."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.conftest import Runner

pytestmark = pytest.mark.root

CONF = b"listen 8080;\n\x00binary\xff tail\n"
SCRIPT = b"#!/bin/sh\necho from-config\n"


def test_configs_at_absolute_targets_and_with_swarm_defaults(
    secretd: Runner, image: str, tmp_path: Path
) -> None:
    (tmp_path / "app.conf").write_bytes(CONF)
    (tmp_path / "hello.sh").write_bytes(SCRIPT)
    (tmp_path / "key").write_text("k3y")
    (tmp_path / "t.tmpl").write_text('pw={{ secret("key") }} region={{ env("REGION") }}\n')
    host_etc = sorted(p.name for p in Path("/etc").iterdir())
    result = secretd(
        "run", "--rm", "-e", "REGION=eu",
        "--config",
        f"source=file:{tmp_path}/app.conf,target=/etc/app/app.conf,uid=1000,gid=1001,mode=0440",
        "--config", f"app.conf=file:{tmp_path}/app.conf",
        "--config", f"source=file:{tmp_path}/hello.sh,target=/usr/local/bin/hello.sh,mode=0555",
        "--config", f"source=file:{tmp_path}/app.conf,target=/etc/extra.conf",
        "--secret", f"key=file:{tmp_path}/key",
        "--template", f"source={tmp_path}/t.tmpl,target=/etc/db/db.conf",
        image, "sh", "-c",
        "sha256sum /etc/app/app.conf /app.conf | cut -d' ' -f1; "
        "stat -c '%u %g %a' /etc/app/app.conf /app.conf /etc/db/db.conf; hello.sh; "
        "cat /etc/db/db.conf; test -f /etc/passwd && echo image-etc-kept; "
        "grep -E ' /(etc/app|run/secrets|etc/db) ' /proc/self/mountinfo",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    digest = hashlib.sha256(CONF).hexdigest()
    lines = result.stdout.splitlines()
    assert lines[:8] == [
        digest, digest, "1000 1001 440", "0 0 444", "0 0 400", "from-config",
        "pw=k3y region=eu", "image-etc-kept",
    ]  # fmt: skip
    mounts = {line.split()[4]: set(line.split()[5].split(",")) for line in lines[8:]}
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
