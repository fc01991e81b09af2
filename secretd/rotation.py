"""Keeping a running command's secrets current: poll, compare, swap, act.

Each secret with a refresh interval (``refresh=`` on its reference, ``[secrets.NAME]
refresh``, or ``--refresh`` for all) is checked with its provider's cheap ``version()``;
only a new version is fetched, and only new **content** replaces files: a provider that
bumps a version number for the same value causes no write and no action. Secrets due
within ``BATCH`` seconds of each other are checked together, and everything that changed
in one check is written in one ``update()`` followed by one action, so a rotation that
touches several secrets restarts a command once, not once per secret. A change a poll
found waits ``SETTLE`` seconds, then every polled secret is checked again: a rotation
written as several steps (one secret after another, or one twice) still makes one batch.

A check that fails keeps the last good files, is logged once (the secret's name and the
error, never a value) and is retried with a doubling backoff capped at ``MAX_BACKOFF``
(or the interval, if longer); the secret is *stale* from the first failure until a check
succeeds, which ``secretd ps`` shows. Leased secrets are left to the engine's lease
upkeep: their version is that of the lease, not of a value.

``request()`` (the daemon, for ``secretd secret rotate NAME``) marks secrets to check at
the next wake-up, whether or not they have an interval. Everything else runs in the
thread that supervises the command.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .broker import Broker
from .errors import SecretdError, UsageError
from .refs import parse_refresh
from .spec import Container, RunSpec, Secret, SecretRef

log = logging.getLogger(__name__)

BATCH = 0.5  # seconds: secrets due this close together are checked (and acted on) together
SETTLE = 0.5  # seconds to wait after a change, for the rest of one rotation to land
MAX_BACKOFF = 60.0
EXEC_TIMEOUT = 60.0
ACTIONS = ("none", "signal:NAME", "restart", "exec:CMD")


@dataclass(frozen=True)
class OnChange:
    """What to do once new files are in place: ``none``, ``signal`` (``signum`` to the
    command's process group or the container), ``restart`` or ``exec`` (``command``,
    through ``/bin/sh -c`` on the host)."""

    action: str = "none"
    signum: signal.Signals | None = None
    command: str | None = None


def parse_signal(text: str, flag: str) -> signal.Signals:
    """``HUP``, ``SIGHUP`` or ``1`` as a signal.

    Raises:
        UsageError: no such signal.
    """
    name = text.strip().upper()
    try:
        if name.isascii() and name.isdigit():
            return signal.Signals(int(name))
        return signal.Signals[name if name.startswith("SIG") else f"SIG{name}"]
    except (KeyError, ValueError):
        raise UsageError(
            f"unknown signal {text!r} in {flag}", "give a signal name like HUP or SIGUSR1"
        ) from None


def parse_on_change(text: str) -> OnChange:
    """``--on-change``: ``none``, ``signal:NAME``, ``restart`` or ``exec:CMD``.

    Raises:
        UsageError: any other action, a bad signal or an empty command.
    """
    action, colon, rest = text.partition(":")
    if text in ("none", "restart"):
        return OnChange(text)
    if action == "signal" and colon:
        return OnChange("signal", signum=parse_signal(rest, f"--on-change {text}"))
    if action == "exec" and rest.strip():
        return OnChange("exec", command=rest)
    raise UsageError(f"unknown --on-change action {text!r}", f"use one of {', '.join(ACTIONS)}")


def check_spec(spec: RunSpec) -> OnChange:
    """Check a RunSpec's rotation flags before anything starts; its ``--on-change``.

    Raises:
        UsageError: a bad ``--on-change``, ``--stop-signal``, ``--stop-timeout`` or
            ``--refresh`` (checked again here: a daemon's caller sends a number).
    """
    on_change = parse_on_change(spec.on_change)
    if on_change.action == "restart" and spec.detach:
        raise UsageError(
            "--on-change restart is for runs secretd waits for, not -d",
            "use signal:NAME with -d (the container's own process reloads)",
        )
    parse_signal(spec.stop_signal, "--stop-signal")
    if spec.refresh is not None:  # again: a daemon's caller may send any number
        parse_refresh(spec.refresh, "--refresh")
    if not 0 <= spec.stop_timeout <= 3600:
        raise UsageError(
            f"--stop-timeout {spec.stop_timeout:g} is outside 0-3600 seconds",
            "give the seconds restart waits before SIGKILL",
        )
    return on_change


def content(secret: Secret) -> bytes:
    """A digest of what the files of ``secret`` would hold (its value, or its whole tree).

    ``hashlib`` is imported here: only runs that watch for changes need it, and it costs
    a plain run ~2 ms to load."""
    import hashlib

    digest = hashlib.sha256(secret.value)
    for path, value in sorted((secret.tree or {}).items()):
        digest.update(b"\0%d:%s\0" % (len(path), path.encode()))
        digest.update(hashlib.sha256(value).digest())
    return digest.digest()


class _Watched:
    """One secret under watch: when to look next, and what it was last time."""

    def __init__(self, index: int, interval: float | None, now: float) -> None:
        self.index = index
        self.interval = interval
        self.next_at = now + interval if interval else None
        self.failures = 0
        self.stale_since: float | None = None  # wall clock, for ps


class Rotation:
    """The secrets of one run, kept current.

    Args:
        broker: asks providers for versions and values.
        refs, secrets: the run's references and what they resolved to; ``secrets`` is
            updated in place as new versions replace old ones (the engine re-plans a
            restarted command from it).
        default: ``--refresh`` (seconds), for references without a ``refresh`` of their own.
    """

    def __init__(
        self,
        broker: Broker,
        refs: Sequence[SecretRef],
        secrets: list[Secret],
        default: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        pause: Callable[[float], None] = time.sleep,
    ) -> None:
        self.broker = broker
        self.refs = refs
        self.secrets = secrets
        self._clock = clock
        self._pause = pause
        now = clock()
        self._watched = [
            _Watched(i, ref.refresh or default, now)
            for i, (ref, secret) in enumerate(zip(refs, secrets, strict=True))
            if secret.lease_id is None
        ]
        # what each watched secret's files hold, taken at its first check: a run that
        # ends before one (most do) hashes nothing
        self._digests: dict[int, bytes] = {}
        self._requested: set[str] = set()
        self._lock = threading.Lock()

    def names(self) -> set[str]:
        """The names (and store keys) this run would re-read on request."""
        return set().union(*(_keys(self.refs[w.index]) for w in self._watched))

    def request(self, names: set[str]) -> bool:
        """Check the secrets named (by name or local store key) at the next wake-up; from
        any thread. Whether this run has any of them."""
        hit = names & self.names()
        if hit:
            with self._lock:
                self._requested |= hit
        return bool(hit)

    def requested(self) -> bool:
        with self._lock:
            return bool(self._requested)

    def due(self) -> float | None:
        """When the next check is due (``time.monotonic``), or ``None``: never."""
        times = [w.next_at for w in self._watched if w.next_at is not None]
        return min(times) if times else None

    def stale(self) -> dict[str, float]:
        """``{name: since}`` (epoch seconds) for each secret whose last check failed."""
        return {
            self.refs[w.index].name: w.stale_since
            for w in self._watched
            if w.stale_since is not None
        }

    def poll(self) -> list[int]:
        """Check what is due or requested; the indices of secrets whose content changed
        (``self.secrets`` already holds the new ones). A change a poll found settles first;
        one a request named (``secretd secret rotate``: the rotation is done) does not."""
        now = self._clock()
        with self._lock:
            requested, self._requested = self._requested, set()
        asked = {w.index for w in self._watched if _keys(self.refs[w.index]) & requested}
        batch = [
            w
            for w in self._watched
            if (w.next_at is not None and w.next_at <= now + BATCH) or w.index in asked
        ]
        changed = {w.index for w in batch if self._check(w, now)}
        if changed - asked:
            self._pause(SETTLE)
            now = self._clock()
            again = [w for w in self._watched if w.interval or w.index in changed]
            changed |= {w.index for w in again if self._check(w, now)}
        return sorted(changed)

    def _check(self, watched: _Watched, now: float) -> bool:
        ref, old = self.refs[watched.index], self.secrets[watched.index]
        try:
            if self.broker.version(ref) == old.version and watched.failures == 0:
                self._schedule(watched, now)
                return False
            new = self.broker.provider(ref.scheme).get(ref)
        except SecretdError as exc:
            self._failed(watched, now, exc)
            return False
        if watched.stale_since is not None:
            log.info("%s can be read again; its files are current", ref.name)
        watched.failures, watched.stale_since = 0, None
        self._schedule(watched, now)
        if watched.index not in self._digests:
            self._digests[watched.index] = content(old)
        digest = content(new)
        self.secrets[watched.index] = new
        if digest == self._digests[watched.index]:
            log.debug("%s: version %s, same content: nothing to do", ref.name, new.version)
            return False
        self._digests[watched.index] = digest
        log.info("%s changed (version %s -> %s)", ref.name, old.version, new.version)
        return True

    def _failed(self, watched: _Watched, now: float, exc: SecretdError) -> None:
        if watched.failures == 0:
            name = self.refs[watched.index].name
            log.error("refreshing %s failed; the command keeps its files: %s", name, exc)
            watched.stale_since = time.time()
        watched.failures += 1
        base = watched.interval or 1.0
        backoff = min(base * 2 ** min(watched.failures, 16), max(MAX_BACKOFF, base))
        watched.next_at = now + backoff

    def _schedule(self, watched: _Watched, now: float) -> None:
        watched.next_at = now + watched.interval if watched.interval else None


def _keys(ref: SecretRef) -> set[str]:
    """What ``secretd secret rotate`` may call a secret: its name, or its store key."""
    return {ref.name, ref.locator} if ref.scheme == "local" else {ref.name}


class Actions:
    """``--on-change``: what the command gets once its files changed.

    Args:
        relaunch: starts the command again with the current files (for ``restart``).
    """

    def __init__(self, spec: RunSpec, relaunch: Callable[[], Container]) -> None:
        self.on_change = check_spec(spec)
        self.stop_signal = parse_signal(spec.stop_signal, "--stop-signal")
        self.stop_timeout = spec.stop_timeout
        self._relaunch = relaunch

    def after_change(self, container: Container, names: Sequence[str]) -> Container:
        """Act once for one batch of changes; the container to supervise from now on
        (a new one after ``restart``)."""
        action = self.on_change
        if action.action == "signal" and action.signum is not None:
            what = ", ".join(names)
            log.info("sending %s to %s: %s changed", action.signum.name, container.id, what)
            container.signal(action.signum)
        elif action.action == "exec" and action.command is not None:
            self._exec(action.command, names)
        elif action.action == "restart":
            log.info("restarting %s: %s changed", container.id, ", ".join(names))
            stop(container, self.stop_signal, self.stop_timeout)
            container.remove()
            return self._relaunch()
        return container

    @staticmethod
    def _exec(command: str, names: Sequence[str]) -> None:
        """Run the hook on the host; its failure is logged, the command runs on."""
        import subprocess  # here: only exec: hooks need it (~1 ms of every run's imports)

        try:
            done = subprocess.run(
                ["/bin/sh", "-c", command],
                stdin=subprocess.DEVNULL,
                timeout=EXEC_TIMEOUT,
                check=False,
                env={"PATH": "/usr/local/bin:/usr/bin:/bin", "SECRETD_CHANGED": " ".join(names)},
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            import shlex

            log.error("--on-change exec %s failed: %s", shlex.quote(command), type(exc).__name__)
            return
        if done.returncode:
            log.warning("--on-change exec exited with status %d", done.returncode)


def stop(container: Container, signum: signal.Signals, timeout: float) -> int:
    """``signum``, then SIGKILL after ``timeout`` seconds; the command's exit status."""
    container.signal(signum)
    status = container.wait(timeout)
    if status is None:
        container.signal(signal.SIGKILL)
        status = container.wait()
    assert status is not None
    return status
