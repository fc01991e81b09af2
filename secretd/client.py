"""The CLI's side of the daemon: use it when its socket answers, else work in-process.

The daemon is never required. ``SECRETD_HOST=unix:///path`` names the socket (and then
it must answer); otherwise the client tries ``<runtime_dir>/secretd.sock`` and, for users
other than root, the system daemon's ``/run/secretd/secretd.sock``, and falls back to the
engine in-process when neither answers. ``--no-daemon`` skips the daemon altogether.

Nothing is sent to a socket before ``trust`` has checked that only the caller or root could
have put it there and that root or the caller listens on it: ``/tmp/secretd-<uid>`` is
anyone's to create, and an impostor there would get ``secret create``'s value or a run's
terminal. A named socket (``SECRETD_HOST``) that fails the check is an error; a default
one is skipped with a warning, and the work is done in-process.

For ``run`` the client passes its stdin, stdout and stderr (its terminal, when it has one)
to the daemon, so the command reads and writes them directly; the client then only
relays signals and waits for the exit status. If the client dies, the daemon notices the
closed connection and stops the command.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import trust, wire
from .config import Config
from .errors import LaunchError, Untrusted, UsageError
from .protocol import (
    Channel,
    Closed,
    Message,
    Oversized,
    ProtocolError,
    encode_blob,
    raise_for,
    request,
)
from .signals import FORWARDED, Relay, SignalForwarder
from .spec import RunSpec
from .trust import RUNTIME_HINT

if TYPE_CHECKING:
    from .store import SecretInfo

REFUSAL_TIMEOUT = 1.0
log = logging.getLogger(__name__)

REPLY_TIMEOUT = 30.0
SYSTEM_SOCKET = Path(wire.SYSTEM_RUNTIME_DIR) / wire.SOCKET_NAME


def default_socket(config: Config) -> Path:
    """Where the daemon listens: ``[daemon] socket``, else ``<runtime_dir>/secretd.sock``
    (``/run/secretd/secretd.sock`` as root, ``$XDG_RUNTIME_DIR/secretd/secretd.sock``
    otherwise)."""
    configured = config.daemon.get("socket")
    return Path(str(configured)) if configured else config.runtime_dir / wire.SOCKET_NAME


def socket_from_host(host: str) -> Path:
    """The socket path of ``SECRETD_HOST=unix:///path`` (the only transport there is).

    Raises:
        UsageError: another scheme, or a relative path.
    """
    scheme, sep, rest = host.partition("://")
    if scheme != "unix" or not sep or not rest.startswith("/"):
        raise UsageError(
            f"SECRETD_HOST {host!r} is not a unix socket address",
            "use unix:///path/to/secretd.sock",
        )
    return Path(rest)


def candidates(config: Config) -> tuple[list[Path], bool]:
    """The sockets to try, in order, and whether the user named one (``SECRETD_HOST``)."""
    if config.host:
        return [socket_from_host(config.host)], True
    paths = [default_socket(config)]
    if os.geteuid() != 0 and SYSTEM_SOCKET not in paths:
        paths.append(SYSTEM_SOCKET)
    return paths, False


def connect(config: Config) -> Channel | None:
    """A connection to the daemon, or ``None`` when none answers and none was named.

    Raises:
        LaunchError: ``SECRETD_HOST`` names a socket that does not answer.
    """
    paths, named = candidates(config)
    for path in paths:
        try:
            chan = _connect(path)
        except Untrusted as exc:
            if named:
                raise Untrusted(
                    f"refusing the daemon socket {path}: {exc.message}",
                    "unset SECRETD_HOST, or name a daemon that root or you run",
                ) from None
            log.warning("ignored the daemon socket %s: %s; working without the daemon: %s",
                        path, exc.message, RUNTIME_HINT)  # fmt: skip
            continue
        except OSError as exc:
            if named:
                raise LaunchError(
                    f"cannot reach the secretd daemon at {path}: {exc.strerror}",
                    "start 'secretd daemon', or unset SECRETD_HOST to work without it",
                ) from None
            log.debug("no daemon at %s (%s)", path, exc.strerror)
            continue
        log.debug("using the daemon at %s", path)
        return chan
    return None


def _connect(path: Path) -> Channel:
    """A connection to the daemon at ``path``, once only root or the caller can have made it.

    Raises:
        OSError: nothing listens at ``path``.
        Untrusted: someone else controls the path, the socket or the listening process.
    """
    trust.check_socket(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
        trust.check_peer(sock, path)
    except BaseException:
        sock.close()
        raise
    return Channel(sock)


def send(chan: Channel, message: Message, fds: Sequence[int] = ()) -> None:
    """Send a request. The daemon refuses a caller its policy grants nothing before
    reading the request, and hangs up: then the send fails, but the refusal is there to
    be read, and it is what the user needs to see."""
    try:
        chan.send(message, fds)
    except Oversized:
        raise UsageError(
            "this request is over the secretd daemon's 1 MiB limit (a run's request holds the "
            "environment a host command inherits)",
            "run it with --clean-env or a smaller environment, or with --no-daemon",
        ) from None
    except ProtocolError:
        try:
            reply, _ = chan.receive(REFUSAL_TIMEOUT)
        except ProtocolError:
            reply = None
        if reply is not None:
            raise_for(reply)
        raise


def call(config: Config, message: Message, timeout: float | None = REPLY_TIMEOUT) -> Message | None:
    """Send one request and return the reply; ``None`` when no daemon answers.

    Raises:
        SecretdError: the daemon refused or failed the request (its message, its exit code).
    """
    chan = connect(config)
    if chan is None:
        return None
    with chan:
        send(chan, message)
        try:
            reply, _ = chan.receive(timeout)
        except Closed:
            raise _gone("before answering") from None
    return raise_for(reply)


def _gone(when: str) -> LaunchError:
    """The daemon hung up without a word: it died, or was stopped, mid-request."""
    error = LaunchError(
        f"the secretd daemon closed the connection {when}", "see the daemon's log"
    )
    error.exit_code = 125
    return error


def run(config: Config, spec: RunSpec, secrets: Sequence[str], no_daemon: bool = False) -> int:
    """Run ``spec`` through the daemon if one answers, else in-process; the exit status.

    Args:
        secrets: the ``--secret`` texts as typed: the daemon binds them with its own config.
        no_daemon: never use the daemon. Runs with ``env:`` secrets never do either: the
            daemon cannot see this process's environment (CI hands secrets over this way).
    """
    from_env = [ref.name for ref in spec.secrets if ref.scheme == "env"]
    if from_env and not no_daemon:
        log.debug("%s come from this environment, which the daemon cannot see: in-process",
                  ", ".join(from_env))  # fmt: skip
    # configs and templates are not authorised by the daemon's policy yet; a host command
    # without a sandbox is this process's child, its secrets directory this user's
    local = no_daemon or bool(from_env or spec.configs or spec.templates) or spec.runtime == "host"
    chan = None if local else connect(config)
    if chan is None and spec.detach and spec.refreshes():
        raise UsageError(
            "--refresh with -d needs the secretd daemon, which keeps a detached container's "
            "files current after this command returns",
            "start it with 'secretd daemon', or drop --refresh",
        )
    if chan is None:
        from .broker import Broker
        from .engine import Engine  # only without a daemon: the whole pipeline

        with SignalForwarder() as forwarder:
            engine = Engine(config, Broker(config, suggest=True))  # the caller's own names
            return engine.run(spec, on_start=forwarder.attach)
    with chan, _stdio() as fds, _Relay(chan) as relay:
        wire = spec.to_json() | {"secrets": []}
        send(chan, request("run", spec=wire, secrets=list(secrets), cwd=os.getcwd()), fds)
        status = _wait(chan, relay)
    return status


def _wait(chan: Channel, relay: _Relay) -> int:
    """Follow a run's events until its exit status (or its error) arrives."""
    while True:
        try:
            message, _ = chan.receive()
        except Closed:
            raise _gone("before the command ended") from None
        event = raise_for(message).get("event")
        if event == "started":
            relay.started = True
        elif event == "exit":
            return int(message["status"])


@contextmanager
def _stdio() -> Iterator[list[int]]:
    """``wire.stdio_to_pass``, the opened ones closed once the run is over."""
    fds, opened = wire.stdio_to_pass()
    try:
        yield fds
    finally:
        for fd in opened:
            os.close(fd)


class _Relay(Relay):
    """Signals sent to the client go to the command, as with ``docker run``.

    Before the command starts, a signal ends the client instead (128+N); the daemon sees
    the connection close and abandons the run. A terminal resize (SIGWINCH) is relayed as
    a resize message, since the kernel only tells the terminal's foreground group.
    """

    def __init__(self, chan: Channel) -> None:
        self.chan = chan
        self.started = False

    def handlers(self) -> dict[int, Callable[[int, Any], None]]:
        return dict.fromkeys((*FORWARDED, signal.SIGWINCH), self._handle)

    def _handle(self, signum: int, _frame: object) -> None:
        if not self.started:
            if signum != signal.SIGWINCH:
                raise SystemExit(128 + signum)
            return
        message = (
            {"op": "resize", **_terminal_size()}
            if signum == signal.SIGWINCH
            else {"op": "signal", "signal": signum}
        )
        try:
            self.chan.send(message)
        except ProtocolError:
            log.debug("the daemon is gone; the next read reports it")


def _terminal_size() -> dict[str, int]:
    try:
        size = os.get_terminal_size(0)
    except OSError:
        return {}
    return {"rows": size.lines, "cols": size.columns}


class DaemonStore:
    """The part of ``LocalStore``'s API that ``secretd secret`` uses, served by the
    daemon's store (values go in, never out). Build it with ``daemon_store``."""

    def __init__(self, config: Config) -> None:
        self.config = config

    def list_secrets(self) -> list[SecretInfo]:
        return [_info(item) for item in self._call("ls")["secrets"]]

    def inspect(self, name: str) -> SecretInfo:
        return _info(self._call("inspect", name=name)["secret"])

    def create(
        self, name: str, value: bytes, labels: Mapping[str, str] | None = None
    ) -> SecretInfo:
        reply = self._call("create", name=name, value=encode_blob(value), labels=dict(labels or {}))
        return _info(reply["secret"])

    def rotate(self, name: str, value: bytes) -> SecretInfo:
        return _info(self._call("rotate", name=name, value=encode_blob(value))["secret"])

    def remove(self, name: str) -> None:
        self._call("rm", name=name)

    def _call(self, action: str, **fields: Any) -> Message:
        reply = call(self.config, request("secret", action=action, **fields))
        if reply is None:
            raise LaunchError("the secretd daemon stopped answering", "try again")
        return reply


def daemon_store(config: Config) -> DaemonStore | None:
    """A DaemonStore when a daemon answers, else ``None`` (use the store in-process)."""
    chan = connect(config)
    if chan is None:
        return None
    chan.close()
    return DaemonStore(config)


def _info(data: Mapping[str, Any]) -> SecretInfo:
    from .store import SecretInfo

    versions = tuple((int(v), str(at)) for v, at in data.get("versions", ()))
    return SecretInfo(**{**data, "versions": versions})
