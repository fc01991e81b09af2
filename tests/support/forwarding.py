"""The ``argv`` handler (``cli/forwarded.py``) in this process, for unit and fuzz tests:
a stand-in for ``Daemon`` that records each run the handler starts (``run_for``), with
what this process's ``os.environ``, ``sys.stderr`` and ``client.run`` were at that moment
and what the handler had written to the caller's stderr by then."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from secretd import client, protocol
from secretd.cli import forwarded
from secretd.config import Config
from secretd.policy import Peer, Policy
from secretd.spec import RunSpec

ROOT = Peer(pid=1, uid=0, gid=0, groups=())


@dataclass(frozen=True)
class Started:
    """One ``run_for`` call, and the process as it was then."""

    spec: RunSpec
    texts: tuple[str, ...]
    cwd: str
    environ: Mapping[str, str]
    stderr: str  # what the caller's stderr had received before the run
    own: tuple[object, object, object]  # os.environ, sys.stderr, client.run


class Channel:
    """The connection: what the handler sent (a ``fallback``, or nothing)."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, message: dict[str, Any], fds: Sequence[int] = ()) -> None:
        self.sent.append(message)


class StandIn:
    """What the handler uses of a ``Daemon``: its config and policy, and ``run_for``."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.policy = Policy.from_config(config)
        self.started: list[Started] = []
        self.caller_stderr = -1  # the read end of the pipe handed over as the caller's stderr

    def run_for(
        self,
        chan: Channel,
        peer: Peer,
        spec: RunSpec,
        texts: Sequence[str],
        cwd: str,
        fds: list[int],
        environ: Mapping[str, str],
    ) -> None:
        try:
            written = os.read(self.caller_stderr, 1 << 20).decode()
        except BlockingIOError:
            written = ""
        own = (os.environ, sys.stderr, client.run)
        self.started.append(Started(spec, tuple(texts), cwd, environ, written, own))


def forward(
    daemon: StandIn, argv: list[str], environ: dict[str, str], cwd: str = "/tmp"
) -> Channel:
    """Hand ``argv`` and ``environ`` to the ``argv`` handler as a client would, with
    ``/dev/null`` for stdin and stdout and a pipe for stderr, which ``run_for`` reads."""
    handler = forwarded.handlers(daemon)["argv"]  # type: ignore[arg-type]
    chan = Channel()
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    daemon.caller_stderr = read_end
    try:
        with open(os.devnull, "r+b") as null:
            message = protocol.request("argv", argv=argv, env=environ, cwd=cwd)
            handler(chan, ROOT, message, [null.fileno(), null.fileno(), write_end])  # type: ignore[arg-type]
    finally:
        os.close(read_end)
        os.close(write_end)
    return chan
