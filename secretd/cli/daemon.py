"""``secretd daemon``: the server, in the foreground.

As ``dockerd``'s command does, ``secretd daemon`` wires the process together (logging,
hardening, reaping, the socket, signals) and leaves serving to ``secretd.daemon``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .. import __version__, listener
from ..client import default_socket
from ..config import Config, load_config
from ..errors import printable
from ..policy import Policy
from ..refs import parse_mode
from . import AppContext

if TYPE_CHECKING:
    from ..runtime.engines.reaper import MountReaper

log = logging.getLogger("secretd.daemon")


class _TextFormatter(logging.Formatter):
    """``2026-11-29T04:12:00.123Z info secretd.daemon: message``: one line per event."""

    def format(self, record: logging.LogRecord) -> str:
        return f"{_stamp(record.created)} {record.levelname.lower()} {record.name}: " + (
            printable(record.getMessage())  # a client's or a server's text stays on its line
        )


class _JsonFormatter(logging.Formatter):
    """One JSON object per line, for journald and log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(
            {
                "time": _stamp(record.created),
                "level": record.levelname.lower(),
                "logger": record.name,
                "msg": record.getMessage(),
                "pid": record.process,
            }
        )


def _stamp(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@click.command()
@click.option(
    "--socket",
    "socket_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Socket to listen on [default: /run/secretd/secretd.sock as root, else "
    "$XDG_RUNTIME_DIR/secretd/secretd.sock].",
)
@click.option(
    "--config-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The daemon's config (bindings, providers, [daemon], [policy]).",
)
@click.option(
    "--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.pass_obj
def daemon(
    app: AppContext, socket_path: Path | None, config_file: Path | None, log_format: str
) -> None:
    """Serve runs and store requests on a Unix socket, in the foreground.

    Clients (`secretd run`, `secretd secret ...`) use it when its socket answers. The
    policy in the config file's [policy] table decides who may use which secrets.
    SIGTERM or Ctrl-C stops every run it started, then the daemon.
    """
    config = load_config(app.flags, config_file or app.config_file)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if log_format == "json" else _TextFormatter())
    root = logging.getLogger("secretd")
    root.handlers[:] = [handler]
    level = app.flags["log_level"] or os.environ.get("SECRETD_LOG_LEVEL")
    root.setLevel((level or config.daemon.get("log_level") or "info").upper())
    _serve(config, socket_path or default_socket(config))


def watch_engines(config: Config) -> list[MountReaper]:
    """Start the mount reaper of each engine in ``[daemon] engines`` (default: Docker when
    its socket exists): it removes a detached container's secrets once it is destroyed."""
    from ..runtime.engines.endpoint import docker_host
    from ..runtime.engines.reaper import watch_destroyed

    names = config.daemon.get("engines")
    if names is None:
        host = docker_host()
        names = ["docker"] if Path(host.removeprefix("unix://")).exists() else []
    return [watch_destroyed(config.runtime_dir, str(name)) for name in names]


class _Stopping(BaseException):
    """Raised in the main thread by SIGTERM/SIGINT to leave the intake (``serve()``).
    Not an ``Exception``: that thread also answers small requests, and no handler's
    ``except Exception`` may take it for a failed request (as KeyboardInterrupt)."""


def _serve(config: Config, path: Path) -> None:
    """Harden, reap, listen on ``path`` (or the socket systemd passed), watch the container
    engines, and serve until SIGTERM; then stop every run and remove the socket we made."""
    from .. import daemon as server
    from . import forwarded

    server.harden()
    policy = Policy.from_config(config)  # a malformed policy stops us before we listen
    server.remove_leftovers(config)
    sock, bound = listener.inherited(), None
    if sock is None:
        mode = parse_mode(config.daemon.get("socket_mode", "0660"), "[daemon] socket_mode")
        sock = listener.listen(path, mode, config.daemon.get("socket_group", "secretd"))
        bound = path
    daemon = server.Daemon(config, sock, policy)
    daemon.handlers.update(forwarded.handlers(daemon))  # the thin client's run requests
    reapers: list[MountReaper] = []
    threading.Thread(target=lambda: reapers.extend(watch_engines(config)), daemon=True).start()

    def stop(signum: int, _frame: object) -> None:
        raise _Stopping(signal.Signals(signum).name)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    log.info("secretd %s listening on %s", __version__, sock.getsockname())
    try:
        daemon.serve()
    except _Stopping as exc:
        log.info("%s: stopping every run and exiting", exc)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
        daemon.shutdown()
        for reaper in list(reapers):
            reaper.stop()
        if bound is not None:
            bound.unlink(missing_ok=True)
