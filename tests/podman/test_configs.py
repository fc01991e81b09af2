"""``--config`` in a Podman container: Swarm's placement, exec allowed for configs only."""

from __future__ import annotations

import hashlib
import os
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


def test_a_replaced_absolute_target_is_seen_inside_a_running_container() -> None:
    """The update a re-issued lease makes: the image has no /etc/app, so it is bound whole
    (found with 'podman image mount'), and the new file is seen inside."""
    from secretd import mount
    from secretd.config import load_config
    from secretd.runtime.engines.podman import PodmanRuntime
    from secretd.spec import RunSpec, Secret, SecretRef

    refs = [
        SecretRef("other", "file:/x", "/srv/other/value"),
        SecretRef("db", "file:/y", "/etc/app/db.pass"),
    ]
    old = [Secret("other", "1", b"other-v1"), Secret("db", "1", b"db-v1")]
    spec = RunSpec(
        command=("sh", "-c", "cat /etc/app/db.pass; echo; "
                 "until grep -q db-v2 /etc/app/db.pass; do sleep 0.1; done; "
                 "cat /etc/app/db.pass /srv/other/value; test -f /etc/passwd && echo kept"),
        secrets=tuple(refs), image=IMAGE, runtime="podman",
    )  # fmt: skip
    runtime = PodmanRuntime.from_config(load_config())
    read, write = os.pipe()
    with open(os.devnull, "rb") as null:
        container = runtime.launch(spec, mount.plan(refs, old), (null.fileno(), write, write))
    out = os.fdopen(read, "rb")
    try:
        assert out.readline() == b"db-v1\n"  # running, its mounts made: now replace
        container.update(tuple(mount.files_for(refs[1], Secret("db", "2", b"db-v2"))))
        status = container.wait(60)
    finally:
        container.remove()
        os.close(write)
    with out:
        assert (status, out.read()) == (0, b"db-v2other-v1kept\n")
