"""``secretd daemon``: a Unix-socket server that authorises, resolves and launches.

One thread accepts connections and reads their requests without blocking
(``intake.py``); it answers small quick requests itself (``QUICK``). Every other request
gets a thread of its own (plus, during a run, one that watches the client): the engine
blocks in ``wait()`` for as long as a command runs, so threads keep it the same code as
in-process. A run's command is forked by its request's thread, which lives until the
command is gone, so ``PR_SET_PDEATHSIG`` (tied to the forking thread) only fires when
the daemon dies.

Each connection: peer credentials -> ``check_connect`` (before any byte is parsed) ->
one request -> one handler. The daemon holds every provider credential and the store
key; it is non-dumpable, writes no core files, and never logs a value.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import json
import logging
import os
import queue
import resource
import secrets
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from . import __version__, _linux, accesslog, protocol, safeopen
from .backends import Provider, load_provider
from .broker import Broker
from .caller_run import authorise_run, bind
from .closer import Closer
from .config import Config
from .engine import Engine
from .errors import AccessDenied, LaunchError, SecretdError, StoreError, UsageError
from .intake import Intake
from .limits import Budget, Connections, Limits
from .policy import Peer, Policy, peer_of
from .protocol import Channel, Closed, Message, ProtocolError
from .rotation import Rotation
from .signals import FORWARDED
from .spec import Container, RunSpec, SecretMount
from .store import LocalStore

log = logging.getLogger(__name__)

DISCONNECT_GRACE = 1.0
STOP_TIMEOUT = 10.0
IDLE_THREAD = 30.0
ACCEPT_POLL = 1.0
# Requests the intake's thread answers itself: no waiting, and a reply that fits the
# socket's buffer (from a request this small), so no client can hold that thread up.
QUICK = frozenset({"ping", "version", "resolve-check"})
QUICK_FRAME = 4096
THREAD_STACK = 2 * 1024 * 1024  # deep enough for the recursion limit of C code (json)
RUN_NAME_MAX = 128
SIGNALS = {int(s) for s in FORWARDED} | {int(signal.SIGWINCH)}
ROTATE_TICK = 0.2  # how soon a run sees 'secretd secret rotate'


def harden() -> None:
    """No core dumps, no ptrace or /proc/<pid>/mem by the same uid: memory holds secrets.

    As root, memory is also locked so that secrets never reach swap: each page as it is
    first touched (``MCL_ONFAULT``), so idle thread stacks cost nothing. An unprivileged
    daemon is not locked: under its small ``RLIMIT_MEMLOCK``, ``MCL_FUTURE`` would turn
    ordinary allocations into failures.
    """
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    _linux.prctl(_linux.PR_SET_DUMPABLE, 0)
    # What a run takes comes back when it ends: values above 128 KiB get mappings of their
    # own, unmapped when freed (glibc would raise the threshold after the first free and
    # keep later ones in heaps it cannot shrink), threads share two arenas instead of
    # reserving 64 MiB each, and a thread's stack is 2 MiB, not 8 (with MCL_FUTURE, every
    # reservation counts as locked memory until an idle thread retires).
    _linux.mallopt(_linux.M_MMAP_THRESHOLD, 128 * 1024)
    _linux.mallopt(_linux.M_ARENA_MAX, 2)
    threading.stack_size(THREAD_STACK)
    if os.geteuid() != 0:
        log.info("not locking memory (not root): secrets may reach swap")
        return
    try:
        _linux.mlockall(_linux.MCL_CURRENT | _linux.MCL_FUTURE | _linux.MCL_ONFAULT)
    except OSError as exc:
        log.warning("cannot lock memory (%s): secrets may reach swap", exc.strerror)


class RunRecord:
    """One run in flight: what ``ps`` shows and what ``stop`` or a disconnect reaches."""

    def __init__(self, peer: Peer, spec: RunSpec, keys: list[str]) -> None:
        self.id = secrets.token_hex(6)
        self.peer = peer
        self.name = spec.name
        self.command = list(spec.command)
        self.secrets = keys
        self.started = time.time()
        self.done = threading.Event()
        self.container: Container | None = None
        self.rotation: Rotation | None = None
        self._abandoned: float | None = None
        self._lock = threading.Lock()
        self._killer: threading.Timer | None = None

    def watch(self, rotation: Rotation) -> None:
        self.rotation = rotation

    def attach(self, container: Container) -> None:
        with self._lock:
            self.container = container
            grace = self._abandoned
        if grace is not None:
            self.terminate(grace)

    def signal(self, signum: int) -> None:
        with self._lock:
            if self.container is not None and not self.done.is_set():
                self.container.signal(signal.Signals(signum))

    def terminate(self, grace: float) -> None:
        """SIGTERM now, SIGKILL after ``grace`` seconds; before the start, as soon as it starts."""
        with self._lock:
            if self.container is None:
                self._abandoned = grace
                return
            if self._killer is not None or self.done.is_set():
                return
            self._killer = threading.Timer(grace, self.signal, (signal.SIGKILL,))
            self._killer.daemon = True
            self._killer.start()
        self.signal(signal.SIGTERM)

    def finish(self) -> None:
        with self._lock:
            self.done.set()
            if self._killer is not None:
                self._killer.cancel()
                # the timer holds this record (its target), which holds the run's values
                # and output filter: a cycle the collector would free only much later
                self._killer = None

    def view(self) -> dict[str, Any]:
        container = self.container.id if self.container else None
        state = "running" if container else "starting"
        return {
            "id": self.id,
            "name": self.name,
            "container": container,
            "uid": self.peer.uid,
            "user": self.peer.user,
            "secrets": self.secrets,
            "command": self.command,
            "started": self.started,
            "state": state,
            "stale": self.rotation.stale() if self.rotation else {},
        }


class Daemon:
    """Serves requests on ``listener`` until ``shutdown()``.

    Args:
        config: the daemon's own configuration (its bindings, providers, policy).
        listener: a bound, listening Unix socket.
        policy: who may do what (default: from ``config``).
    """

    def __init__(self, config: Config, listener: socket.socket, policy: Policy | None = None):
        self.config = config
        self.listener = listener
        self.policy = policy or Policy.from_config(config)
        # one store for every request and run: one SQLite connection, the data key
        # unwrapped (a passphrase's scrypt paid) once
        self.store = LocalStore.from_config(config, keep_open=True)
        # what resolve-check asks of the store, from the intake's thread: without waiting
        # for another process's lock (every other client would wait behind it)
        self.names = LocalStore.from_config(config, keep_open=True, busy_timeout=0)
        self.engine = Engine(config, Broker(config, loader=self._provider))
        self.engine.tick = ROTATE_TICK
        self.engine.keep = self._keep
        self.kept: dict[str, Rotation] = {}  # detached containers kept past their runs, by id
        self.limits = Limits.from_config(config.daemon)
        self.connections = Connections(self.limits)
        self.closer = Closer(self.limits.max_connections_per_user, self.connections)
        self.budget = Budget(self.limits)
        self.runs: dict[str, RunRecord] = {}
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self._active = 0  # connections being served
        self._idle = 0  # threads waiting for a connection
        self._queue: queue.SimpleQueue[tuple[socket.socket, Peer, Message, list[int]]]
        self._queue = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._no_threads = False  # the last worker could not be started (warned)
        self.handlers: dict[str, Callable[[Channel, Peer, Message, list[int]], None]] = {
            "ping": self._ping,
            "version": self._ping,
            "run": self._run,
            "resolve-check": self._resolve_check,
            "secret": self._secret,
            "ps": self._ps,
            "stop": self._stop,
            "rotate": self._rotate,
        }

    def serve(self) -> None:
        """Accept connections and read their requests (``intake.py``) until ``shutdown()``.

        A connection beyond its uid's or the daemon's limit gets one error frame and is
        closed at once; root, the daemon's uid and administrators are always served. A
        caller the policy grants nothing is refused before a byte of its request is read.

        The intake wakes every ``ACCEPT_POLL`` seconds: a SIGTERM the kernel hands to
        another thread only flags Python's handler, which runs when this thread does."""
        intake = Intake(
            self.listener,
            self.limits.read_timeout,
            self._opened,
            self._arrived,
            self._failed,
            protocol.MAX_FDS,
            self.closer,
        )
        try:
            intake.run(self._stopping, ACCEPT_POLL)
        finally:
            intake.close()

    def _opened(self, conn: socket.socket) -> Peer | None:
        """The peer of a new connection, counted against its limits; ``None`` when it
        was refused (answered and closed)."""
        peer = peer_of(conn)
        refusal = self.connections.admit(peer.uid, self.policy.may_administer(peer))
        if refusal is not None:
            _refuse(conn, peer, refusal, self.closer)
            return None
        try:
            self.policy.check_connect(peer)
        except SecretdError as exc:
            self._failed(conn, peer, exc)
            return None
        return peer

    def _arrived(
        self, conn: socket.socket, peer: Peer, message: Message, fds: list[int], size: int
    ) -> None:
        """Serve a request: a small quick one (``QUICK``) here and now, in the intake's
        thread (its reply fits the socket's buffer), any other in a thread of its own
        (idle threads are reused: starting one costs more than a whole small request).
        When no thread can be started, the request is refused: the intake serves on."""
        if message.get("op") in QUICK and size <= QUICK_FRAME:
            try:
                self._connection(conn, peer, message, fds, quick=True)
            finally:
                self.connections.release(peer.uid)
            return
        conn.setblocking(True)
        with self._lock:
            spawn = self._idle == 0
            self._active += 1
            self._idle -= not spawn
        if spawn and not self._spawn():
            with self._done:
                self._active -= 1
                self._done.notify_all()
            conn.setblocking(False)  # a fresh socket's buffer holds one small frame
            busy = LaunchError(
                "the secretd daemon cannot start a thread for this request now",
                "try again later",
            )
            self._failed(conn, peer, busy, fds)
            return
        self._queue.put((conn, peer, message, fds))

    def _spawn(self) -> bool:
        """Start a worker; ``False`` when the system gives no thread (out of memory or of
        threads), warned once until one starts again."""
        try:
            threading.Thread(target=self._worker, daemon=True).start()
        except (RuntimeError, MemoryError):
            if not self._no_threads:
                log.warning("cannot start a thread to serve a request; refusing it")
            self._no_threads = True
            return False
        self._no_threads = False
        return True

    def _failed(
        self, conn: socket.socket, peer: Peer, error: SecretdError, fds: Sequence[int] = ()
    ) -> None:
        """End a connection whose request was refused or will not arrive (and close the
        descriptors ``fds`` it brought)."""
        try:
            _fail(Channel(conn), peer, error)
        finally:
            self.closer.release(peer.uid, conn, list(fds))
            self.connections.release(peer.uid)

    def shutdown(self, grace: float = STOP_TIMEOUT) -> None:
        """Stop every command and wait (up to ``grace`` + 1 s) for the cleanup; called by
        the thread that ran ``serve()``, once it has left the intake."""
        self._stopping.set()
        self.listener.close()
        with self._lock:
            records = list(self.runs.values())
        for record in records:
            record.terminate(grace)
        with self._done:
            self._done.wait_for(lambda: self._active == 0, grace + 1)
        self.closer.stop()

    def _worker(self) -> None:
        """Serve requests one after another; retire after ``IDLE_THREAD`` seconds
        without one. A command forked here dies with the daemon only: ``PR_SET_PDEATHSIG``
        follows the forking thread, which serves that run until the command is gone."""
        while True:
            try:
                conn, peer, message, fds = self._queue.get(timeout=IDLE_THREAD)
            except queue.Empty:
                with self._done:
                    if self._idle > 0:  # else a request was just promised to an idle thread
                        self._idle -= 1
                        return
                continue
            try:
                self._connection(conn, peer, message, fds)
            finally:
                self.connections.release(peer.uid)
            with self._done:
                self._active -= 1
                self._idle += 1
                self._done.notify_all()

    def _connection(
        self, sock: socket.socket, peer: Peer, message: Message, fds: list[int], quick: bool = False
    ) -> None:
        """Answer one request, then close its descriptors and the connection (``quick``:
        in the intake's thread, which waits on no client's close: ``closer.py``)."""
        chan = Channel(sock)
        try:
            op = self._check_request(message)
            log.debug("request op=%s uid=%d pid=%d", op, peer.uid, peer.pid)
            self.handlers[op](chan, peer, message, fds)
        except SecretdError as exc:
            _fail(chan, peer, exc)
        except Exception as exc:  # noqa: BLE001 - one broken request must not stop others
            at = traceback.extract_tb(exc.__traceback__)[-1]
            log.error("internal error %s at %s:%s", type(exc).__name__, at.filename, at.lineno)
        finally:
            if quick:
                self.closer.release(peer.uid, sock, fds)
            else:
                for fd in fds:
                    os.close(fd)
                chan.close()

    def _check_request(self, message: Message) -> str:
        version, op = message.get("v"), message.get("op")
        if version != protocol.VERSION:
            raise ProtocolError(
                f"protocol version {version!r} is not supported (this daemon speaks "
                f"{protocol.VERSION})",
                "use a secretd client of the same version as the daemon",
            )
        if not isinstance(op, str) or op not in self.handlers:
            raise ProtocolError(f"unknown request {op!r}", f"known: {', '.join(self.handlers)}")
        return op

    def _ping(self, chan: Channel, peer: Peer, message: Message, fds: list[int]) -> None:
        admin = self.policy.may_administer(peer)
        reply = {"version": __version__, "protocol": protocol.VERSION, "admin": admin}
        chan.send({"ok": True, "uid": peer.uid, "pid": os.getpid(), **reply})

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
        """Serve the run a forwarded command line asked for (``cli/forwarded.py``): checked
        and authorised exactly as a ``run`` request of ``spec``, the ``--secret`` ``texts``
        and ``cwd`` is; ``environ`` is the caller's environment (which no request can set),
        for the run's own ``env:`` secrets."""
        wire = json.loads(json.dumps(spec.to_json() | {"secrets": []}))  # as a client sends it
        run = protocol.request("run", spec=wire, secrets=list(texts), cwd=cwd)
        self._run(chan, peer, run, fds, environ)

    def _run(
        self,
        chan: Channel,
        peer: Peer,
        message: Message,
        fds: list[int],
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """A ``run`` request; ``environ``: the caller's environment, which a forwarded run
        (``run_for``) brings for its ``env:`` secrets (a ``run`` request has none)."""
        if len(fds) != 3:
            raise ProtocolError("a run request carries 3 descriptors: stdin, stdout, stderr")
        texts, cwd = protocol.strings(message, "secrets"), message.get("cwd")
        if not (cwd is None or isinstance(cwd, str) and cwd.startswith("/") and "\0" not in cwd):
            raise ProtocolError("the cwd of a run request must be an absolute path")
        try:
            spec = RunSpec.from_json(message.get("spec") or {})
            _check_run_name(spec.name)
        except UsageError as exc:
            raise ProtocolError(f"malformed RunSpec: {exc.line()}") from None
        self.budget.check_count(len(texts))
        spec, keys, own = authorise_run(self.policy, peer, self.config, spec, texts, cwd, environ)
        self.budget.check_count(len(keys))  # an env: pattern is one secret per variable
        engine = self.engine.with_providers(own) if own else self.engine
        _check_rotation(spec, self.policy.is_superuser(peer))
        record = RunRecord(peer, spec, keys)
        watcher = threading.Thread(target=self._watch, args=(chan, record), daemon=True)
        with self._lock:
            self.runs[record.id] = record
        watcher.start()
        log.info("run %s for %s secrets=%s command=%s", record.id, peer, keys, spec.command[:1])

        def started(container: Container) -> None:
            accesslog.record("client", run=container.id, uid=peer.uid, pid=peer.pid)
            record.attach(container)
            chan.send({"event": "started", "id": record.id, "container": container.id})

        held: list[int] = []

        def admit(planned: SecretMount) -> None:
            size = sum(len(file.value) for file in planned.files)
            self.budget.reserve(peer.uid, size)
            held.append(size)

        try:
            try:
                trusted = self.policy.is_superuser(peer)
                with safeopen.reading_for(peer.uid, peer.groups, trusted):
                    status = engine.run(
                        spec, (fds[0], fds[1], fds[2]), started, admit, record.watch
                    )
            finally:
                record.finish()  # before the reply: the client hangs up as soon as it has it
                for size in held:
                    self.budget.release(peer.uid, size)
            log.info("run %s exited with status %d", record.id, status)
            _reply(chan, {"event": "exit", "status": status})
        except SecretdError as exc:
            log.info("run %s failed: %s", record.id, exc.line())
            _reply(chan, protocol.failure(exc) | {"event": "error"})
        finally:
            with self._lock:
                del self.runs[record.id]
            with contextlib.suppress(OSError):  # wakes the watcher, unless the client hung up
                chan.sock.shutdown(socket.SHUT_RDWR)
            watcher.join()

    def _watch(self, chan: Channel, record: RunRecord) -> None:
        """Relay the client's signals; when it goes away (Ctrl-C, kill), stop the command."""
        while not record.done.is_set():
            try:
                message, _ = chan.receive()
            except ProtocolError:
                if not record.done.is_set():
                    log.info("client of run %s went away; stopping the command", record.id)
                    record.terminate(DISCONNECT_GRACE)
                return
            op, signum = message.get("op"), message.get("signal")
            if op == "resize":
                record.signal(signal.SIGWINCH)
            elif op == "signal" and isinstance(signum, int) and signum in SIGNALS:
                record.signal(signum)

    def _resolve_check(self, chan: Channel, peer: Peer, message: Message, fds: list[int]) -> None:
        results = []
        for text in protocol.strings(message, "secrets"):
            try:
                item = bind(text, self.config)
            except UsageError as exc:
                results.append({"secret": text, "allowed": False, "error": exc.line()})
                continue
            key = item.key or item.ref.name
            allowed = self.policy.allows(peer, key) and (
                item.key is not None or self.policy.is_superuser(peer)
            )
            # whether a name exists is for those who may use it: others get one answer
            known = self._known(item.key) if allowed else None
            results.append({"secret": key, "allowed": allowed, "known": known})
        chan.send({"ok": True, "secrets": results})

    def _provider(self, scheme: str, config: Config) -> Provider:
        """The broker's providers; ``local`` reads the daemon's one store."""
        if scheme == "local":
            from .backends.local import LocalProvider

            return LocalProvider(self.store)
        return load_provider(scheme, config)

    def _known(self, key: str | None) -> bool | None:
        """Whether the daemon binds or stores ``key``, without reading a value; ``None``
        when the store cannot tell now (another process holds its lock, or it is damaged)."""
        if key is None:
            return None
        if key in self.config.secrets:
            return True
        try:
            return bool(self.names.inspect(key))
        except StoreError:
            return None
        except SecretdError:
            return False

    def _secret(self, chan: Channel, peer: Peer, message: Message, fds: list[int]) -> None:
        action, name = message.get("action"), message.get("name")
        store = self.store
        if action == "ls":
            infos = [i for i in store.list_secrets() if self._may_see(peer, i.name)]
            chan.send({"ok": True, "secrets": [dataclasses.asdict(i) for i in infos]})
            return
        if not isinstance(name, str):
            raise ProtocolError(f"secret {action!r} needs a name")
        if action == "inspect":
            if not self._may_see(peer, name):
                self.policy.check_secrets(peer, [name])
            chan.send({"ok": True, "secret": dataclasses.asdict(store.inspect(name))})
            return
        if action not in ("create", "rotate", "rm"):
            raise ProtocolError(f"unknown secret action {action!r}", "ls, inspect, create, ...")
        self.policy.check_admin(peer, action)
        if action == "rm":
            store.remove(name)
            info = None
        elif action == "create":
            info = store.create(name, protocol.blob(message, "value"), protocol.labels(message))
        else:
            info = store.rotate(name, protocol.blob(message, "value"))
            self._notify({name})
            from .compose import fresh

            fresh.rotated(self.config.runtime_dir, {name}, self.engine.broker)
        log.info("store %s %r by uid=%d", action, name, peer.uid)
        chan.send({"ok": True, "secret": dataclasses.asdict(info) if info else None})

    def _may_see(self, peer: Peer, name: str) -> bool:
        return self.policy.may_administer(peer) or self.policy.allows(peer, name)

    def _ps(self, chan: Channel, peer: Peer, message: Message, fds: list[int]) -> None:
        everyone = self.policy.may_administer(peer)
        with self._lock:
            views = [r.view() for r in self.runs.values() if everyone or r.peer.uid == peer.uid]
            kept = {cid[:12]: r.stale() for cid, r in self.kept.items()} if everyone else {}
        chan.send({"ok": True, "runs": sorted(views, key=lambda v: v["started"]), "kept": kept})

    def _rotate(self, chan: Channel, peer: Peer, message: Message, fds: list[int]) -> None:
        """``secretd secret rotate --notify NAME``: every run using NAME reads it again now
        (its provider has a new value the daemon did not write)."""
        names = protocol.strings(message, "names")
        if not self.policy.may_administer(peer):
            self.policy.check_secrets(peer, names)
        chan.send({"ok": True, "runs": self._notify(set(names))})

    def _keep(self, cid: str, rotation: Rotation, upkeep: Callable[[], None]) -> None:
        """Keep a detached container (renew, rotate) in a thread of its own until it is
        gone; with the caller's file-reading rules (safeopen's context) of its run."""
        context = contextvars.copy_context()

        def run() -> None:
            with self._lock:
                self.kept[cid] = rotation
            try:
                context.run(upkeep)
            except Exception as exc:  # noqa: BLE001 - a thread's last word
                log.error("keeping a detached container failed: %s", type(exc).__name__)
            finally:
                with self._lock:
                    self.kept.pop(cid, None)

        threading.Thread(target=run, daemon=True, name="secretd-detached").start()

    def _notify(self, names: set[str]) -> list[str]:
        """Wake every run (and kept detached container) using one of ``names``; the ids
        of those runs. Runs starting from now on read anew."""
        self.engine.broker.forget()
        with self._lock:
            records = list(self.runs.values())
            kept = list(self.kept.items())
        woken = [r.id for r in records if r.rotation is not None and r.rotation.request(names)]
        woken += [cid[:12] for cid, rotation in kept if rotation.request(names)]
        if woken:
            log.info("reading %s again for runs %s", ", ".join(sorted(names)), ", ".join(woken))
        return woken

    def _stop(self, chan: Channel, peer: Peer, message: Message, fds: list[int]) -> None:
        target, timeout = message.get("id"), message.get("timeout", STOP_TIMEOUT)
        if not isinstance(target, str) or not target:  # else it matches every unnamed run
            raise UsageError("stop needs the id or name of a run", "see 'secretd ps'")
        if type(timeout) not in (int, float) or not 0 <= timeout <= 3600:
            raise ProtocolError("stop needs a timeout of 0-3600 seconds")
        with self._lock:
            found = [r for r in self.runs.values() if target in (r.id, r.name)]
        if not found or not (self.policy.may_administer(peer) or found[0].peer.uid == peer.uid):
            raise UsageError(f"no run {target!r} of yours is running", "see 'secretd ps'")
        record = found[0]
        log.info("stopping run %s for uid=%d", record.id, peer.uid)
        record.terminate(float(timeout))
        record.done.wait(float(timeout) + 5)
        chan.send({"ok": True, "id": record.id, "stopped": record.done.is_set()})


def _check_rotation(spec: RunSpec, superuser: bool) -> None:
    """What the daemon will not do for a run's rotation: ``exec:`` hooks would run as the
    daemon's user."""
    if spec.on_change.startswith("exec:") and not superuser:
        raise AccessDenied(
            "--on-change exec: would run its command as the daemon's user; only root may",
            "use signal:NAME or restart, or --no-daemon",
        )


def _check_run_name(name: str | None) -> None:
    """A run's ``--name`` is shown to administrators (``secretd ps``): printable, short."""
    if name is None:
        return
    if len(name) > RUN_NAME_MAX:
        raise UsageError(f"run name {name[:20]!r}... has more than {RUN_NAME_MAX} characters")
    if not name.isprintable():
        raise UsageError(f"run name {name!r} has a control character", "use printable ones")


def _refuse(conn: socket.socket, peer: Peer, error: SecretdError, closer: Closer) -> None:
    """One error frame for a connection over its limit, without waiting on its reader (or
    on its close: ``closer``)."""
    log.info("refused a connection of uid=%d pid=%d: %s", peer.uid, peer.pid, error.message)
    conn.setblocking(False)  # a fresh socket's buffer holds one small frame
    try:
        _reply(Channel(conn), protocol.failure(error))
    finally:
        closer.release(peer.uid, conn, [])


def _fail(chan: Channel, peer: Peer, error: SecretdError) -> None:
    """The answer to a request that fails: none to a client that closed without one."""
    if isinstance(error, Closed):
        log.debug("uid=%d closed the connection without a request", peer.uid)
        return
    if isinstance(error, ProtocolError):
        log.info("bad request from uid=%d pid=%d: %s", peer.uid, peer.pid, error)
    _reply(chan, protocol.failure(error))


def _reply(chan: Channel, message: Message) -> None:
    """Send a final reply; a client that is already gone needs none."""
    try:
        chan.send(message)
    except ProtocolError as exc:
        log.debug("could not reply: %s", exc)


def remove_leftovers(config: Config) -> None:
    """Take down what a killed predecessor left: oci containers whose owner is gone, engine
    mounts whose container is gone (sandbox mounts die with their namespace), FUSE mounts
    whose server died. Not removing every mount: it would take the mounts of live
    detached containers too."""
    from .mount import fuse
    from .runtime.engines import reaper
    from .runtime.oci import state as ocistate

    try:
        for name in fuse.remove_dead_mounts(config.runtime_dir):
            log.warning("unmounted FUSE mount %s a previous secretd left behind", name)
    except (OSError, SecretdError) as exc:
        log.error("cannot check for leftover FUSE mounts: %s", exc)
    try:
        for cid in ocistate.remove_dead_containers(config):
            log.warning("took down container %s a previous secretd left behind", cid)
    except (OSError, SecretdError) as exc:
        log.error("cannot check for leftover oci containers: %s", exc)
    reaper.remove_orphan_mounts_quietly(config.runtime_dir)
