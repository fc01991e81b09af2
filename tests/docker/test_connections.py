"""A Docker run in a long-lived process (the daemon runs many) gives back every connection
to the engine when it ends, without waiting for Python's cycle collector."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator

import pytest

from secretd import mount
from secretd.config import load_config
from secretd.runtime.engines.docker import DockerRuntime
from secretd.spec import RunSpec, Secret, SecretRef
from tests.docker.conftest import IMAGE

pytestmark = [pytest.mark.docker, pytest.mark.root]


def _sockets() -> set[str]:
    """This process's open sockets, as /proc names them (``socket:[inode]``)."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except FileNotFoundError:  # the listing's own descriptor
            continue
        if target.startswith("socket:"):
            found.add(target)
    return found


@pytest.fixture
def no_cycle_collection() -> Iterator[None]:
    """The SDK's response objects form reference cycles: with the collector off, only an
    explicit close frees a connection, as in a busy daemon between collections."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.mark.usefixtures("no_cycle_collection")
@pytest.mark.parametrize("tty", [False, True], ids=["frames", "tty"])
def test_an_attached_run_leaves_no_connection_open(tty: bool) -> None:
    ref = SecretRef("api_key", "file:/x", "api_key")
    spec = RunSpec(command=("cat", "/run/secrets/api_key"), secrets=(ref,), image=IMAGE,
                   runtime="docker", remove=True, tty=tty)  # fmt: skip
    runtime = DockerRuntime.from_config(load_config())
    before = _sockets()
    read, write = os.pipe()
    with open(os.devnull, "rb") as null:
        plan = mount.plan([ref], [Secret("api_key", "1", b"sk-value")])
        container = runtime.launch(spec, plan, (null.fileno(), write, write))
    try:
        assert container.wait(60) == 0
    finally:
        container.remove()
        os.close(write)
    with os.fdopen(read, "rb") as out:
        assert out.read().replace(b"\r\n", b"\n") == b"sk-value"
    assert _sockets() - before == set()  # a socket closed meanwhile is no concern
