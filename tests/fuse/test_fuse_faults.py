"""The daemon serving a FUSE mount is killed: readers get ENOTCONN, no value is on any
disk, and the next daemon start unmounts what is left. Through the daemon, the access log
names the caller."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon.conftest import CANARY, NOBODY, Daemon, World, client, wait_for
from tests.daemon.conftest import world as world  # noqa: F401 - the fixture
from tests.fuse.conftest import access_log, fuse_mounts
from tests.support.plaintext import files_holding

pytestmark = [pytest.mark.fuse, pytest.mark.root]


@pytest.fixture
def daemon(world: World) -> Iterator[Daemon]:  # noqa: F811 - world is the fixture
    started = Daemon(world)
    started.start()
    yield started
    if started.proc is not None and started.proc.poll() is None:
        started.kill()
    for path in fuse_mounts(world.runtime):  # a failed test's, before world's rmtree
        subprocess.run(["umount", "-l", path], check=False)


def test_daemon_killed_readers_get_enotconn_no_value_on_disk_restart_reaps(
    world: World,  # noqa: F811
    daemon: Daemon,
) -> None:
    started = time.time() - 1
    value = f"fuse-daemon-{os.urandom(6).hex()}"  # this test's own: others' use CANARY
    (world.root / "api_key.txt").write_text(value)
    ready = world.root / "ready"
    env = world.env(SECRETD_HOST=world.host)
    runner = subprocess.Popen(
        [sys.executable, "-m", "secretd", "run", "--mount-type", "fuse", "--secret", "api_key",
         "--", "sh", "-c", f"cat /run/secrets/api_key >/dev/null && touch {ready} && sleep 300"],
        cwd=world.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        wait_for(ready.exists, f"the command to start; daemon log:\n{daemon.logs()}")
        mounts = fuse_mounts(world.runtime)
        assert len(mounts) == 1, mounts
        held = os.open(f"{mounts[0]}/secrets/api_key", os.O_RDONLY)
        try:
            assert os.pread(held, 100, 0) == value.encode()
            daemon.kill()
            with pytest.raises(OSError) as read_held:
                os.pread(held, 100, 0)
        finally:
            os.close(held)
        with pytest.raises(OSError) as opened:
            open(f"{mounts[0]}/secrets/api_key", "rb")
        assert read_held.value.errno == opened.value.errno == errno.ENOTCONN
        runner.wait(30)
    finally:
        if runner.poll() is None:
            runner.kill()
        runner.communicate()

    roots = [world.state, world.runtime, Path("/tmp"), Path("/dev/shm")]
    found = files_holding(
        [value.encode()], roots, started, skip={"api_key.txt"}, one_device=True, max_size=16 << 20
    )  # api_key.txt: the daemon's own source file
    assert found == []

    restarted = Daemon(world)
    restarted.start()
    try:
        assert fuse_mounts(world.runtime) == [], restarted.logs()
        assert not Path(mounts[0]).exists()
        assert "unmounted FUSE mount" in restarted.logs()
    finally:
        restarted.stop()

    events = access_log(world.state)
    caller = next(e for e in events if e["event"] == "client")
    run = next(e for e in events if e["event"] == "run")
    assert caller["run"] == run["run"] and caller["uid"] == 0 and caller["pid"] > 1
    assert [s["name"] for s in run["secrets"]] == ["api_key"]
    assert {e["comm"] for e in events if e["event"] == "fuse-open"} >= {"cat"}
    assert value.encode() not in (world.state / "access.log").read_bytes()


def test_nobody_through_the_daemon_reads_a_file_the_daemon_serves(
    world: World,  # noqa: F811
    daemon: Daemon,
) -> None:
    result = client(
        world, "run", "--mount-type", "fuse", "--no-redact", "--secret", "api_key", "--",
        "sh", "-c", "id -u; stat -c '%a %u' /run/secrets/api_key; cat /run/secrets/api_key",
        user=NOBODY,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["65534", "444", "65534", CANARY]  # as on the tmpfs
    events = access_log(world.state)
    caller = next(e for e in events if e["event"] == "client")
    opened = next(e for e in events if e["event"] == "fuse-open")
    assert (caller["uid"], opened["uid"], opened["comm"]) == (NOBODY, NOBODY, "cat")
    assert fuse_mounts(world.runtime) == []
