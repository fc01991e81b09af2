"""The daemon's mount reaper outlives whatever one reap or one event throws at it.

Real tmpfs mounts with real notes; the container engine is a stand-in that reports no
live containers and hands over destroy events from a queue (a unit test of the reaper's
loop: tests/docker runs it against a real dockerd).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from secretd.config import Config
from secretd.runtime.engines import common as engines
from secretd.runtime.engines import reaper as reaping
from secretd.runtime.engines.endpoint import EventStream
from secretd.runtime.oci import state as ocistate
from secretd.runtime.process import start_time
from tests.support.waiting import wait_for

pytestmark = pytest.mark.root


class QueuedEngine:
    """Destroy events from a queue; ``None`` ends a stream (the engine restarting)."""

    name = "docker"

    def __init__(self) -> None:
        self.events: queue.SimpleQueue[tuple[str, str] | None] = queue.SimpleQueue()
        self.streams = self.asked = 0
        self.live: set[str] = set()

    def live_ids(self) -> set[str]:
        self.asked += 1
        if self.asked == 1:  # an engine library's own exception, not one of secretd's
            raise RuntimeError("the engine hung up")
        return set(self.live)

    def destroy_events(self) -> EventStream:
        self.streams += 1
        return EventStream(iter(self.events.get, None), lambda: self.events.put(None))

    def close(self) -> None:
        return None


def engine_mount(base: Path, name: str, owner: object, container: str = "c1") -> Path:
    """A tmpfs under ``mounts/`` with an owner note, as ``engines.open_mount`` makes one."""
    path = base / "mounts" / name
    path.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(path)], check=True)
    (path / engines.OWNER_NOTE).write_text(json.dumps(owner))
    (path / engines.CONTAINER_NOTE).write_text(container)
    return path


def mounted(path: Path) -> bool:
    return os.path.ismount(path)


DEAD_OWNER = {"engine": "docker", "host": "unix:///x", "pid": 0, "detach": True}


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    for path in sorted((tmp_path / "mounts").glob("*")):
        if mounted(path):
            subprocess.run(["umount", str(path)], check=False)


def test_a_damaged_note_or_a_hostile_label_does_not_stop_the_reaper(
    runtime: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = QueuedEngine()
    engine.live.add("c2")  # the detached container runs until its destroy event
    monkeypatch.setattr(reaping, "engine_client", lambda name, host: engine)
    damaged = [
        engine_mount(runtime, "a-list", []),
        engine_mount(runtime, "b-pid", {**DEAD_OWNER, "pid": "x"}),
    ]
    leftover = engine_mount(runtime, "c-leftover", DEAD_OWNER)  # reaped past those
    alive = {**DEAD_OWNER, "pid": os.getpid(), "start": str(start_time(os.getpid()))}
    detached = engine_mount(runtime, "d-detached", alive, "c2")
    caplog.set_level(logging.INFO, logger="secretd")
    reaper = reaping.MountReaper(runtime, engine)
    thread = threading.Thread(target=reaper.run, daemon=True)
    thread.start()
    try:
        assert reaper.ready.wait(10)
        wait_for(lambda: not mounted(leftover), "the next reap after the failed one")
        assert engine.streams >= 2  # it reconnected and reaped again
        assert all(mounted(path) for path in damaged)  # not provably ours: left alone
        engine.events.put(("c9", "/\0"))  # any docker user can label a container so
        assert mounted(detached)  # its container exists: the reaps left it
        engine.live.discard("c2")
        engine.events.put(("c2", str(detached)))
        wait_for(lambda: not mounted(detached), "the destroyed container's mount to go")
        assert thread.is_alive()
    finally:
        reaper.stop()
        thread.join(10)
    assert "mount reaper: RuntimeError; carrying on" in caplog.text
    assert "mount reaper: ValueError on a destroy event; carrying on" in caplog.text
    assert "hung up" not in caplog.text and "null" not in caplog.text  # the type, no text


def test_one_oci_leftover_that_resists_does_not_keep_the_others(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = Config(state_dir=tmp_path / "state", runtime_dir=tmp_path / "run")

    def leftover(cid: str, runc: str, created: float) -> Path:
        directory = ocistate.containers_dir(config) / cid
        (directory / "rootfs").mkdir(parents=True)
        record = ocistate.Record(
            id=cid, image="busybox", command=["sleep"], secrets=[], runc=runc,
            runc_root=str(tmp_path / "runc"), status="running", created=created,
        )  # fmt: skip
        ocistate.save(directory, record)
        return directory

    resists = leftover("a" * 64, str(tmp_path / "no-runc-here"), created=2.0)
    goes = leftover("b" * 64, "/bin/true", created=1.0)
    assert ocistate.remove_dead_containers(config) == ["b" * 64]
    assert resists.exists() and not goes.exists()
    assert f"cannot take down container {'a' * 12}: FileNotFoundError" in caplog.text
