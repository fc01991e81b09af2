"""The ``secretd`` entry point: ``secretd run`` handed to a daemon by a client that imports
almost nothing, and everything else to the full CLI.

A ``run`` through the daemon needs no click, no config parser and no pipeline in the
client: it sends its command line, environment, working directory and stdio descriptors
(``argv`` request, docs/protocol.md), and the daemon parses the flags with the same click
command (``cli/run.py``), prints warnings on the client's stderr, and runs the command
with the client's terminal. The client relays signals and terminal resizes and exits with
the command's status. Started as ``python3 -IS`` (the launcher ``tools/setup-host.sh``
writes), this costs a few milliseconds where the full CLI costs seventy.

Nothing is sent before ``trust`` has checked the socket, its directories and the process
that listens (as ``client.py`` does). Whenever this path cannot give exactly what the full
CLI would (no trusted daemon answers, another command, ``--help``, ``--no-daemon``, a
config file of the user's or the project's, or a run the daemon hands back: images,
configs, templates, a flag it cannot parse), ``main`` calls the full CLI in this process,
which then behaves as if it had been started first: same output, same exit status.

Only modules Python loads before ``main`` are imported here (``_socket``, ``_json``,
``_signal`` rather than ``socket``, ``json``, ``signal``: ~10 ms less per run).
"""

from __future__ import annotations

import _json
import _signal  # type: ignore[import-not-found]  # no stub; signal imports enum
import os
import sys
from _socket import AF_UNIX, SCM_RIGHTS, SOCK_STREAM, SOL_SOCKET
from _socket import socket as _Socket

from . import trust
from .errors import Untrusted, printable
from .wire import FORWARDED, MAX_FRAME, SOCKET_NAME, SYSTEM_RUNTIME_DIR, VERSION, stdio_to_pass

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, NoReturn

# The config files that could make the full CLI differ from the daemon's reading of a run.
SYSTEM_CONFIG = "/etc/secretd/config.toml"
PROJECT_CONFIG = "secretd.toml"
# Settings of the caller's environment that change how the full CLI reads a run; the
# daemon parses with its own config, so these runs are the full CLI's.
OWN_SETTINGS = ("SECRETD_STRICT", "SECRETD_RUNTIME")
GONE = "the secretd daemon closed the connection {when}: see the daemon's log"
# Set by the compiled client (thin.c) when a daemon handed a run back: the full CLI runs
# it at once, without asking the daemon a second time.
HANDED_BACK = "SECRETD_HANDED_BACK"


def main() -> NoReturn:
    """``secretd``: a ``run`` through a trusted daemon here, anything else by the full CLI."""
    args = sys.argv[1:]
    handed_back = os.environ.pop(HANDED_BACK, None) is not None
    if args[:1] == ["run"] and not handed_back and _may_forward(args[1:], os.environ):
        status = _forward(args[1:])
        if status is not None:
            _leave(status)
    _full_cli()


def write_launcher(target: str) -> None:
    """Write the ``secretd`` script at ``target`` (``tools/setup-host.sh`` replaces pip's
    with it): this interpreter with ``-IS`` (no site directories, no ``PYTHON*``
    variables, no current directory on the path: ~10 ms less), this package's directory
    on the path, then ``main``. The full CLI adds the site directories when it is needed.
    """
    package_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    text = (
        f"#!{sys.executable} -IS\n"
        "import sys\n"
        f"sys.path.insert(0, {package_dir!r})\n"
        "from secretd.thin import main\n"
        "main()\n"
    )
    temporary = f"{target}.{os.getpid()}.tmp"
    with open(temporary, "w") as fh:
        fh.write(text)
    os.chmod(temporary, 0o755)
    os.replace(temporary, target)


def _full_cli() -> NoReturn:
    """The whole CLI, in this process; under ``-S`` the site directories come first.

    A ``run`` raises the collector's first threshold: its start creates ~100,000 objects
    that live as long as it does (modules, classes, functions), and the passes over them
    cost ~3 ms of every run. It still collects, after that many more allocations: a run
    that supervises its command for days frees its cycles."""
    if sys.argv[1:2] == ["run"]:
        import gc

        gc.set_threshold(100_000)
    if sys.flags.no_site:
        import site

        site.main()
    from .cli import main as cli_main

    cli_main()


def _leave(status: int) -> NoReturn:
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(status)


def _may_forward(args: list[str], environ: Any) -> bool:
    """Whether a daemon could run ``secretd run ARGS`` exactly as the full CLI would.

    Not with ``--help`` or ``--no-daemon`` (before ``--``), not with a config file of the
    user's or of this directory (the daemon reads its own), not with settings of the
    caller's that the daemon does not take (``OWN_SETTINGS``)."""
    options = args[: args.index("--")] if "--" in args else args
    if {"-h", "--help", "--no-daemon"} & set(options):
        return False
    if any(environ.get(name) for name in OWN_SETTINGS):
        return False
    user = environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    configs = (os.path.join(user, "secretd", "config.toml"), PROJECT_CONFIG)
    return not any(os.path.lexists(path) for path in configs)


def sockets(environ: Any) -> list[str] | None:
    """The daemon sockets the full CLI would try, in order; ``None`` when only the full
    CLI can say (``SECRETD_HOST`` that is not ``unix:///path``, a system config that
    names a socket)."""
    settings = _system_settings()
    if settings is None:
        return None
    host = environ.get("SECRETD_HOST") or settings.get("host")
    if host:
        path = str(host).removeprefix("unix://")
        return [path] if path.startswith("/") and str(host).startswith("unix://") else None
    if os.geteuid() == 0:
        default = SYSTEM_RUNTIME_DIR
    elif environ.get("XDG_RUNTIME_DIR"):
        default = os.path.join(environ["XDG_RUNTIME_DIR"], "secretd")
    else:
        default = f"/tmp/secretd-{os.getuid()}"
    runtime_dir = environ.get("SECRETD_RUNTIME_DIR") or settings.get("runtime_dir") or default
    paths = [os.path.join(str(runtime_dir), SOCKET_NAME)]
    system = os.path.join(SYSTEM_RUNTIME_DIR, SOCKET_NAME)
    if os.geteuid() != 0 and system not in paths:
        paths.append(system)
    return paths


def _system_settings() -> dict[str, Any] | None:
    """``host`` and ``runtime_dir`` of ``/etc/secretd/config.toml``; ``None`` when it sets
    ``[daemon] socket`` or cannot be read (the full CLI reports that)."""
    if not os.path.lexists(SYSTEM_CONFIG):
        return {}
    import tomllib  # only on hosts with a system config

    try:
        with open(SYSTEM_CONFIG, "rb") as fh:
            data = tomllib.load(fh)
    except (OSError, ValueError):
        return None
    if "socket" in (data.get("daemon") or {}):
        return None
    return {key: data[key] for key in ("host", "runtime_dir") if isinstance(data.get(key), str)}


def connect(environ: Any) -> _Socket | None:
    """A connection to the first daemon that answers, once ``trust`` has passed its
    socket and the process listening on it; ``None`` when none does, or when one fails
    the checks (the full CLI then says so, or warns and works in-process)."""
    for path in sockets(environ) or ():
        try:
            trust.check_socket(path)
        except Untrusted:
            return None
        except OSError:
            continue
        sock = _Socket(AF_UNIX, SOCK_STREAM)
        try:
            sock.connect(path)
            trust.check_peer(sock, path)
        except Untrusted:
            sock.close()
            return None
        except OSError:
            sock.close()
            continue
        return sock
    return None


def _forward(args: list[str]) -> int | None:
    """Hand ``run ARGS`` to the daemon; the command's status, or ``None`` to let the full
    CLI do it (no daemon, or the daemon handed it back before doing anything)."""
    sock = connect(os.environ)
    if sock is None:
        return None
    try:
        return _run(sock, args)
    finally:
        sock.close()


def _run(sock: _Socket, args: list[str]) -> int | None:
    """The request, then the replies until the command's status."""
    fds, opened = stdio_to_pass()
    message = {
        "v": VERSION,
        "op": "argv",
        "argv": args,
        "env": dict(os.environ),
        "cwd": os.getcwd(),
    }
    try:
        _send(sock, message, fds)
        sent = True
    except _Oversized:
        return None  # nothing sent (a huge environment): the full CLI runs it at once
    except OSError:
        sent = False  # refused before the daemon read the request: the refusal follows
    finally:
        for fd in opened:
            os.close(fd)
    relay = _Relay(sock)
    while True:
        reply = _receive(sock)
        if reply is None and not sent:
            relay.restore()
            return None  # the full CLI tries again, and says what is wrong
        if reply is None:
            return _fail(GONE.format(when="before the command ended"), 125)
        event = reply.get("event")
        if event == "fallback" or _older(reply):
            relay.restore()
            return None
        if event == "started":
            relay.started = True
            continue
        return _outcome(reply)


def _older(reply: dict[str, Any]) -> bool:
    """A daemon of an earlier release, which has no ``argv`` request: the full CLI sends
    it a ``run`` request instead."""
    return reply.get("ok") is False and str(reply.get("error")).startswith("unknown request 'argv'")


def _outcome(reply: dict[str, Any]) -> int:
    """The exit status a final reply means, its error printed as the full CLI prints one
    (a failure of secretd's own before the command ran is 125, as ``docker run``'s)."""
    if reply.get("event") == "exit" and isinstance(reply.get("status"), int):
        return int(reply["status"])
    code = reply.get("exit_code")
    status = code if isinstance(code, int) and 0 < code < 256 else 1
    return _fail(str(reply.get("error") or "the daemon refused the request"), status)


def _fail(line: str, status: int) -> int:
    sys.stderr.write(f"secretd: {printable(line)}\n")
    return 125 if status == 1 else status


def encode(value: Any) -> str:
    """JSON for the request's strings, lists, dicts and ints (``json`` would import ``re``)."""
    if isinstance(value, str):
        return str(_json.encode_basestring_ascii(value))
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{encode(str(k))}:{encode(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(encode(item) for item in value) + "]"
    raise TypeError(f"cannot send a {type(value).__name__}")


class _Decoding:
    """What the C scanner of ``_json`` reads from ``json.JSONDecoder``."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = None
    memo: dict[str, str] = {}


_scan = _json.make_scanner(_Decoding())  # type: ignore[arg-type]


class _Oversized(Exception):
    """A request over the frame limit, which the daemon would refuse: it is not sent."""


def _send(sock: _Socket, message: dict[str, Any], fds: Sequence[int] = ()) -> None:
    payload = encode(message).encode()
    if len(payload) > MAX_FRAME:
        raise _Oversized
    data = len(payload).to_bytes(4, "big") + payload
    sent = sock.sendmsg([data], [(SOL_SOCKET, SCM_RIGHTS, _ints(fds))]) if fds else 0
    if sent < len(data):  # an empty send fails once the daemon has answered and hung up
        sock.sendall(data[sent:])


def _ints(fds: Sequence[int]) -> bytes:
    return b"".join(fd.to_bytes(4, sys.byteorder) for fd in fds)


def _receive(sock: _Socket) -> dict[str, Any] | None:
    """One reply; ``None`` when the daemon closed the connection (or broke the framing)."""
    try:
        header = _read(sock, 4)
        length = int.from_bytes(header, "big") if header else MAX_FRAME + 1
        payload = _read(sock, length) if length <= MAX_FRAME else b""
        reply, _ = _scan(payload.decode(), 0)
    except (OSError, ValueError, StopIteration):
        return None
    return reply if isinstance(reply, dict) else None


def _read(sock: _Socket, size: int) -> bytes:
    chunks, got = [], 0
    while got < size:
        data = sock.recv(size - got)
        if not data:
            return b""
        chunks.append(data)
        got += len(data)
    return b"".join(chunks)


class _Relay:
    """Signals sent to the client go to the command, as with ``docker run``; before it
    starts, one ends the client (128+N) and the daemon, seeing it go, abandons the run. A
    terminal resize is relayed as a message: the kernel tells only the foreground group."""

    def __init__(self, sock: _Socket) -> None:
        self.sock = sock
        self.started = False
        self._previous = {
            sig: _signal.signal(sig, self._handle) for sig in (*FORWARDED, _signal.SIGWINCH)
        }

    def _handle(self, signum: int, _frame: object) -> None:
        if not self.started:
            if signum != _signal.SIGWINCH:
                raise SystemExit(128 + signum)
            return
        if signum == _signal.SIGWINCH:
            message: dict[str, Any] = {"op": "resize", **_terminal_size()}
        else:
            message = {"op": "signal", "signal": signum}
        try:
            _send(self.sock, message)
        except OSError:
            pass  # the daemon is gone; the next read reports it

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            _signal.signal(sig, handler)


def _terminal_size() -> dict[str, int]:
    try:
        size = os.get_terminal_size(0)
    except OSError:
        return {}
    return {"rows": size.lines, "cols": size.columns}
