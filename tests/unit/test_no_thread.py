"""The daemon when the system gives it no thread (``RuntimeError: can't start new
thread``, ``MemoryError``): the intake's thread must serve on. A request that needs a
thread is refused in one line; a close that needs one waits, with the connection open
and counted, until a thread can be started; each is warned about once, without values.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from secretd import protocol
from secretd.config import Config
from secretd.daemon import Daemon
from tests.support.waiting import wait_for

WARNINGS = {
    "cannot start a thread to serve a request; refusing it",
    "cannot start a thread to close a connection; it stays open until one starts",
}


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    """A daemon serving in this process, on a thread started before any test breaks
    thread starting."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(tmp_path / "s"))
    listener.listen(16)
    config = Config(state_dir=tmp_path / "state", runtime_dir=tmp_path / "run")
    served = Daemon(config, listener)
    serving = threading.Thread(target=served.serve, daemon=True)
    serving.start()
    yield served
    served.shutdown(grace=1)
    serving.join(10)
    assert not serving.is_alive()


def ask(daemon: Daemon, request: dict[str, object], fds: tuple[int, ...] = ()) -> dict[str, object]:
    payload = json.dumps(request).encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(daemon.listener.getsockname())
        socket.send_fds(sock, [struct.pack(">I", len(payload)) + payload], fds)
        got = b""
        while len(got) < 4 or len(got) < 4 + struct.unpack(">I", got[:4])[0]:
            chunk = sock.recv(65536)
            assert chunk, "the daemon closed the connection without a reply"
            got += chunk
    reply: dict[str, object] = json.loads(got[4:])
    return reply


def closed_by_daemon(write_end: int) -> bool:
    """Whether every reading end of the pipe is closed (only the daemon held one)."""
    try:
        os.write(write_end, b"x")
    except BrokenPipeError:
        return True
    return False


def no_threads(self: threading.Thread) -> None:
    raise RuntimeError("can't start new thread")


def test_a_request_needing_a_thread_is_refused_and_the_intake_serves_on(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "secretd.daemon")
    monkeypatch.setattr(threading.Thread, "start", no_threads)
    for _ in range(2):
        refused = ask(daemon, protocol.request("ps"))
        assert refused["ok"] is False, refused
        assert "cannot start a thread for this request now" in str(refused["error"])
    assert ask(daemon, protocol.request("ping"))["ok"] is True
    monkeypatch.undo()
    assert ask(daemon, protocol.request("ps"))["ok"] is True
    assert [r.getMessage() for r in caplog.records] == [
        "cannot start a thread to serve a request; refusing it"
    ]


def test_a_close_needing_a_thread_waits_for_one_and_the_intake_serves_on(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "secretd.daemon")
    monkeypatch.setattr(threading.Thread, "start", no_threads)
    read_end, write_end = os.pipe()
    try:
        # a descriptor with a quick request: closing it takes a thread (it could wait)
        assert ask(daemon, protocol.request("ping"), (read_end,))["ok"] is True
        os.close(read_end)
        assert ask(daemon, protocol.request("ping"), (0,))["ok"] is True
        assert ask(daemon, protocol.request("ping"))["ok"] is True
        assert not closed_by_daemon(write_end)  # kept, not closed in the intake's thread
        monkeypatch.undo()
        assert ask(daemon, protocol.request("ping"), (0,))["ok"] is True  # a close again
        wait_for(lambda: closed_by_daemon(write_end), "the waiting close to be done")
    finally:
        os.close(write_end)
    assert [r.getMessage() for r in caplog.records] == [
        "cannot start a thread to close a connection; it stays open until one starts"
    ]
