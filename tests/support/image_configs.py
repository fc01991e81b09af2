"""What the oci, Docker and Podman suites check alike about configs and absolute targets
in a container: the same sources and flags, the same script reading them back, and a
secret file replaced while the container runs."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from secretd import mount
from secretd.runtime import Runtime
from secretd.spec import RunSpec, Secret, SecretRef

CONF = b"listen 8080;\n\x00binary\xff tail\n"
DIGEST = hashlib.sha256(CONF).hexdigest()
# what READ_BACK prints before the mount lines, for CONFIG_ARGS
READ_BACK_LINES = [
    DIGEST, DIGEST, "1000 1001 440", "0 0 444", "0 0 400", "from-config",
    "pw=k3y region=eu", "image-etc-kept",
]  # fmt: skip


def config_args(tmp_path: Path, hello: str) -> list[str]:
    """Write a config, a script, a secret and a template into ``tmp_path``; the ``run``
    flags placing them (the script at ``hello``, run by ``READ_BACK``)."""
    (tmp_path / "app.conf").write_bytes(CONF)
    (tmp_path / "hello.sh").write_bytes(b"#!/bin/sh\necho from-config\n")
    (tmp_path / "key").write_text("k3y")
    (tmp_path / "t.tmpl").write_text('pw={{ secret("key") }} region={{ env("REGION") }}\n')
    return [
        "-e", "REGION=eu",
        "--config",
        f"source=file:{tmp_path}/app.conf,target=/etc/app/app.conf,uid=1000,gid=1001,mode=0440",
        "--config", f"app.conf=file:{tmp_path}/app.conf",
        "--config", f"source=file:{tmp_path}/hello.sh,target={hello},mode=0555",
        "--secret", f"key=file:{tmp_path}/key",
        "--template", f"source={tmp_path}/t.tmpl,target=/etc/db/db.conf",
    ]  # fmt: skip


def read_back(hello: str) -> list[str]:
    """``sh -c`` printing what ``config_args`` placed (``READ_BACK_LINES``), then the
    mountinfo lines of its mount points."""
    return [
        "sh", "-c",
        "sha256sum /etc/app/app.conf /app.conf | cut -d' ' -f1; "
        f"stat -c '%u %g %a' /etc/app/app.conf /app.conf /etc/db/db.conf; {hello}; "
        "cat /etc/db/db.conf; test -f /etc/passwd && echo image-etc-kept; "
        "grep -E ' /(etc/app|run/secrets|etc/db) ' /proc/self/mountinfo",
    ]  # fmt: skip


def mount_options(lines: list[str]) -> dict[str, set[str]]:
    """Mount point -> options, from the mountinfo lines ``read_back`` prints last."""
    return {line.split()[4]: set(line.split()[5].split(",")) for line in lines}


def replaced_while_running(
    runtime: Runtime, image: str, then: str = ""
) -> tuple[int | None, bytes]:
    """Run ``image`` with two absolute-target secrets (``other`` listed first: names were
    once counted by position), replace ``db``'s file once the container has read it, as a
    re-issued lease does (Engine._swap -> Container.update); the exit status and what the
    container printed after its first line (the new db, the old other, then ``then``'s)."""
    refs = [
        SecretRef("other", "file:/x", "/srv/other/value"),
        SecretRef("db", "file:/y", "/etc/app/db.pass"),
    ]
    old = [Secret("other", "1", b"other-v1"), Secret("db", "1", b"db-v1")]
    spec = RunSpec(
        command=("sh", "-c", "cat /etc/app/db.pass; echo; "
                 "until grep -q db-v2 /etc/app/db.pass; do sleep 0.1; done; "
                 f"cat /etc/app/db.pass /srv/other/value{then}"),
        secrets=tuple(refs), image=image, runtime=runtime.name,
    )  # fmt: skip
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
        return status, out.read()
