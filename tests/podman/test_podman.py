"""``secretd run --runtime podman``: the same /run/secrets as with Docker, and unlike
``podman run --secret`` no plaintext copy in podman's storage."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from secretd.mount.tmpfs import HostMount
from secretd.runtime.engines.podman import podman_run_args
from secretd.runtime.engines.reaper import watch_destroyed
from secretd.spec import RunSpec, SecretMount
from tests.conftest import Runner
from tests.podman.conftest import IMAGE, Podman
from tests.support.engines import Bind, mounts_left
from tests.support.plaintext import files_holding

pytestmark = [pytest.mark.podman, pytest.mark.root]


def run(secretd: Runner, *args: str, **kwargs: object):  # type: ignore[no-untyped-def]
    return secretd("run", "--runtime", "podman", *args, **kwargs)


def test_content_mode_readonly_tmpfs(
    secretd: Runner, bound: Bind, clean_environ: dict[str, Path]
) -> None:
    values = bound("api_key", "db_pass")
    script = (
        "stat -c '%a %u %g %s %n' /run/secrets/*; "
        "grep ' /run/secrets ' /proc/mounts | cut -d' ' -f3,4; "
        "cat /run/secrets/k; echo; "
        "echo x > /run/secrets/new 2>/dev/null || echo write refused; "
        "exit 4"
    )
    done = run(
        secretd, "--rm",
        "--secret", "source=api_key,target=k,uid=1000,gid=1000,mode=0400",
        "--secret", "db_pass",
        IMAGE, "sh", "-c", script,
    )  # fmt: skip
    assert done.returncode == 4, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:2] == [
        f"444 0 0 {len(values['db_pass'])} /run/secrets/db_pass",
        f"400 1000 1000 {len(values['api_key'])} /run/secrets/k",
    ]
    fstype, options = lines[2].split()
    assert fstype == "tmpfs" and options.split(",")[0] == "ro"
    assert lines[3:] == [values["api_key"], "write refused"]
    assert mounts_left(clean_environ["runtime"]) == []


def _holding(roots: list[Path], value: bytes) -> list[str]:
    """Files under ``roots`` that hold ``value``, plainly or base64-encoded (podman's way)."""
    return files_holding((value, base64.b64encode(value)), roots)


def test_no_plaintext_in_podman_storage_and_detached_cleanup(
    secretd: Runner, bound: Bind, podman: Podman, clean_environ: dict[str, Path]
) -> None:
    runtime_dir = clean_environ["runtime"]
    values = bound("api_key")
    reaper = watch_destroyed(runtime_dir, engine="podman")
    try:
        done = run(secretd, "-d", "--secret", "api_key", IMAGE, "sleep", "60")
        assert done.returncode == 0, done.stderr
        cid = done.stdout.strip()
        digest = podman("exec", cid, "md5sum", "/run/secrets/api_key").split()[0]
        assert digest == hashlib.md5(values["api_key"].encode()).hexdigest()
        assert values["api_key"] not in podman("inspect", cid)
        labels = json.loads(podman("inspect", cid))[0]["Config"]["Labels"]
        assert labels["io.secretd.secrets"] == "api_key"
        assert _holding(podman.storage, values["api_key"].encode()) == []
        # The search does find what podman's own --secret keeps (the reason to bypass it).
        control = b"control-" + os.urandom(8).hex().encode()
        subprocess.run(
            ["podman", "secret", "create", "control", "-"], input=control, env=podman.env(),
            check=True, capture_output=True,
        )  # fmt: skip
        assert _holding(podman.storage, control) != []
        podman("secret", "rm", "control")
        podman("rm", "--force", "--time=0", cid)
        deadline = time.monotonic() + 2
        while mounts_left(runtime_dir) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert mounts_left(runtime_dir) == []
    finally:
        reaper.stop()


def test_env_values_stay_out_of_podman_argv(
    secretd: Runner, clean_environ: dict[str, Path]
) -> None:
    token = "tok-" + os.urandom(8).hex()
    host_mount = HostMount.create(clean_environ["runtime"], SecretMount(files=(), size=0))
    try:
        spec = RunSpec(image=IMAGE, env=(("API_TOKEN", token), ("PATH", "/bin")))
        argv, env = podman_run_args("podman", spec, host_mount)
    finally:
        host_mount.remove()
    assert token not in " ".join(argv) and "--env=API_TOKEN" in argv
    assert env["API_TOKEN"] == token and "--env=PATH=/bin" in argv
    done = run(secretd, "--rm", "-e", f"API_TOKEN={token}", IMAGE, "sh", "-c", "echo $API_TOKEN")
    assert (done.returncode, done.stdout) == (0, f"{token}\n")
