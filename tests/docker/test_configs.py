"""``--config``/``--template`` in a Docker container, and absolute targets that stay fresh:
a replaced file (a re-issued lease) is seen inside a running container."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from secretd import mount
from secretd.config import load_config
from secretd.runtime.engines.docker import DockerRuntime
from secretd.spec import RunSpec, Secret, SecretRef
from tests.conftest import Runner
from tests.docker.conftest import IMAGE

pytestmark = [pytest.mark.docker, pytest.mark.root]

CONF = b"listen 8080;\n\x00binary\xff tail\n"


def test_configs_templates_and_swarm_defaults_in_a_container(
    secretd: Runner, tmp_path: Path
) -> None:
    (tmp_path / "app.conf").write_bytes(CONF)
    (tmp_path / "hello.sh").write_bytes(b"#!/bin/sh\necho from-config\n")
    (tmp_path / "key").write_text("k3y")
    (tmp_path / "t.tmpl").write_text('pw={{ secret("key") }} region={{ env("REGION") }}\n')
    host_etc = sorted(p.name for p in Path("/etc").iterdir())
    done = secretd(
        "run", "--runtime", "docker", "--rm", "-e", "REGION=eu",
        "--config",
        f"source=file:{tmp_path}/app.conf,target=/etc/app/app.conf,uid=1000,gid=1001,mode=0440",
        "--config", f"app.conf=file:{tmp_path}/app.conf",
        "--config", f"source=file:{tmp_path}/hello.sh,target=/opt/bin/hello.sh,mode=0555",
        "--secret", f"key=file:{tmp_path}/key",
        "--template", f"source={tmp_path}/t.tmpl,target=/etc/db/db.conf",
        IMAGE, "sh", "-c",
        "sha256sum /etc/app/app.conf /app.conf | cut -d' ' -f1; "
        "stat -c '%u %g %a' /etc/app/app.conf /app.conf /etc/db/db.conf; /opt/bin/hello.sh; "
        "cat /etc/db/db.conf; test -f /etc/passwd && echo image-etc-kept; "
        "grep -E ' /(etc/app|run/secrets|etc/db) ' /proc/self/mountinfo",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    digest = hashlib.sha256(CONF).hexdigest()
    lines = done.stdout.splitlines()
    assert lines[:8] == [
        digest, digest, "1000 1001 440", "0 0 444", "0 0 400", "from-config",
        "pw=k3y region=eu", "image-etc-kept",
    ]  # fmt: skip
    # Docker's binds take no noexec (docs/configs.md): read-only is what it keeps
    mounts = {line.split()[4]: set(line.split()[5].split(",")) for line in lines[8:]}
    assert all("ro" in mounts[point] for point in ("/etc/app", "/run/secrets", "/etc/db"))
    assert sorted(p.name for p in Path("/etc").iterdir()) == host_etc


def test_a_replaced_absolute_target_is_seen_inside_a_running_container(tmp_path: Path) -> None:
    """The update a re-issued lease makes (Engine._swap -> Container.update). The other
    absolute secret listed first must keep its own value (names once counted by position)."""
    refs = [
        SecretRef("other", "file:/x", "/srv/other/value"),
        SecretRef("db", "file:/y", "/etc/app/db.pass"),
    ]
    old = [Secret("other", "1", b"other-v1"), Secret("db", "1", b"db-v1")]
    spec = RunSpec(
        command=("sh", "-c", "until grep -q db-v2 /etc/app/db.pass; do sleep 0.1; done; "
                 "cat /etc/app/db.pass /srv/other/value"),
        secrets=tuple(refs), image=IMAGE, runtime="docker",
    )  # fmt: skip
    runtime = DockerRuntime.from_config(load_config())
    read, write = os.pipe()
    with open(os.devnull, "rb") as null:
        container = runtime.launch(spec, mount.plan(refs, old), (null.fileno(), write, write))
    try:
        container.update(tuple(mount.files_for(refs[1], Secret("db", "2", b"db-v2"))))
        status = container.wait(60)
    finally:
        container.remove()
        os.close(write)
    with os.fdopen(read, "rb") as out:
        seen = out.read()
    assert (status, seen) == (0, b"db-v2other-v1")
