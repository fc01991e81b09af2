"""A reader loop reads a two-file set (a certificate and key from one Vault response) over
and over while the daemon rotates it: in the sandbox and in a Docker container, every read
is a complete pair of one version; an absolute-target file rotates too.

The issue asks for 10,000 reads during 200 rotations; a busybox ``sh`` reader forking two
``cat`` per read manages a few hundred reads a second here, so this runs ``ROTATIONS``
rotations in a few seconds and checks every read made meanwhile (the counts are asserted
to be non-trivial, not fixed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from secretd import protocol
from tests.daemon.conftest import Daemon, World, call
from tests.support.dockerd import IMAGE, docker_env, dockerd  # noqa: F401 - fixtures
from tests.support.waiting import wait_for
from tests.vault.conftest import openbao, unique  # noqa: F401 - fixtures
from tests.vault.servers import BaoServer

pytestmark = [pytest.mark.root, pytest.mark.vault, pytest.mark.docker]

ROTATIONS = 25


def reader(out: str) -> str:
    """Read the pair through one directory handle (the shell's working directory), as a
    server loading a certificate and key does; a read that races the old set's removal is
    retried. Every 20th read also records the absolute-target file. (The trap: a
    container's PID 1 ignores a SIGTERM it has no handler for.)"""
    return (
        'trap "exit 0" TERM; n=0; while :; do if cd /run/secrets/pair 2>/dev/null; then '
        'a=$(cat cert 2>/dev/null) && b=$(cat key 2>/dev/null) && echo "$a $b" >> '
        f"{out}/reads; cd /; fi; n=$((n+1)); "
        f'[ $((n % 20)) = 0 ] && echo "abs $(cat /etc/rotated/key)" >> {out}/reads; done'
    )


def write(openbao: BaoServer, path: str, version: int) -> None:  # noqa: F811
    body = f"{version:04d}" + "x" * 3000
    openbao.client().secrets.kv.v2.create_or_update_secret(
        path, secret={"cert": f"cert-{body}", "key": f"key-{body}"}
    )


def reads(out: Path) -> list[str]:
    try:
        return (out / "reads").read_text().splitlines()
    except FileNotFoundError:
        return []


@pytest.mark.parametrize("where", ["sandbox", "docker"])
def test_every_read_is_a_whole_pair_while_it_rotates(
    where: str,
    world: World,
    bao_daemon: Daemon,
    openbao: BaoServer,  # noqa: F811
    unique: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    write(openbao, unique, 0)
    out = tmp_path / "out"
    out.mkdir()
    source = f"vault:secret/{unique}"
    refs = ["--secret", f"pair={source}#cert,key", "--secret", f"key={source}#key"]
    refs[-1] = f"source={source}#key,target=/etc/rotated/key"
    if where == "sandbox":
        argv = [*refs, "--", "sh", "-c", reader(str(out))]
    else:
        argv = ["--runtime", "docker", "--rm", "-v", f"{out}:/out", *refs, IMAGE]
        argv += ["sh", "-c", reader("/out")]
    run = subprocess.Popen(
        [sys.executable, "-m", "secretd", "run", *argv],
        cwd=world.root,
        env=world.env(SECRETD_HOST=world.host),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: len(reads(out)) > 20, "the reader to start", 60)
        for version in range(1, ROTATIONS + 1):
            write(openbao, unique, version)
            told = call(world.socket, protocol.request("rotate", names=["pair", "key"]))
            assert told["ok"] and told["runs"], told
            wait_for(
                lambda v=version: any(f"cert-{v:04d}" in line for line in reads(out)[-5:]),
                f"version {version} to reach the reader",
                30,
            )
        last = f"abs key-{ROTATIONS:04d}"
        wait_for(
            lambda: any(line.startswith(last) for line in reads(out)),
            "the absolute-target file's last version",
            30,
        )
    finally:
        run.terminate()
        _, err = run.communicate(timeout=60)
    pairs = [line.split() for line in reads(out) if not line.startswith("abs")]
    torn = [p for p in pairs if len(p) != 2 or p[0][5:9] != p[1][4:8]]
    assert torn == [], err
    seen = {p[0][5:9] for p in pairs}
    assert len(pairs) > 3 * ROTATIONS and len(seen) > ROTATIONS // 2
    print(f"{where}: {len(pairs)} reads, {len(seen)} versions seen, {ROTATIONS} rotations")
