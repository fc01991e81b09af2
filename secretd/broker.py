"""Resolve references through providers: one place for caching, batching and leases.

The broker never touches a mount and never starts anything: it turns ``SecretRef``s into
``Secret``s and gives leased ones back when asked. Reads of one source that overlap in
time are one upstream read (single-flight): 200 runs starting together with one Vault
secret make one request, not 200. A leased result is never shared: each waiting run then
takes a lease of its own. A run may bring providers of its own (``for_run``: in the
daemon, the caller's environment for its ``env:`` secrets); their reads are that run's
alone, never cached or joined.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence

from . import safeopen
from .backends import Provider, load_provider
from .config import Config
from .errors import NotInStore, SecretdError, close_names
from .spec import Secret, SecretRef

log = logging.getLogger(__name__)

ProviderLoader = Callable[[str, Config], Provider]
FlightKey = tuple[safeopen.Caller | None, tuple[str, str]]


class _Flight:
    """One upstream read in progress, which others asking for the same source wait for;
    ``secret`` stays ``None`` when it failed or is leased (then each reads on its own)."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.secret: Secret | None = None


class Broker:
    """Resolves references; thread-safe, so the daemon shares one across requests.

    Args:
        config: provider settings and ``cache_ttl`` (seconds; 0 disables the cache).
        loader: builds the provider for a scheme (tests inject their own).
        suggest: name close secrets when one is missing from the local store. Only for a
            caller who may list them all (in-process); never in the daemon, where it would
            tell one user the names of another's secrets.
    """

    def __init__(
        self, config: Config, loader: ProviderLoader = load_provider, suggest: bool = False
    ) -> None:
        self.config = config
        self.suggest = suggest
        self._loader = loader
        self._providers: dict[str, Provider] = {}
        # keyed by the caller too: in the daemon, a file read under one caller's checks
        # must not reach another caller (see safeopen)
        self._cache: dict[FlightKey, tuple[float, Secret]] = {}
        self._flights: dict[FlightKey, _Flight] = {}  # reads in progress, by the same key
        self._lock = threading.Lock()
        self._own: Mapping[str, Provider] = {}  # one run's providers (for_run)

    def for_run(self, providers: Mapping[str, Provider]) -> Broker:
        """This broker for one run whose ``providers`` take the place of the shared ones
        for their schemes; everything else (other providers, cache, reads in progress)
        stays shared."""
        view = copy.copy(self)
        view._own = dict(providers)
        return view

    def provider(self, scheme: str) -> Provider:
        if scheme in self._own:
            return self._own[scheme]
        with self._lock:
            if scheme not in self._providers:
                self._providers[scheme] = self._loader(scheme, self.config)
            return self._providers[scheme]

    def resolve(self, refs: Sequence[SecretRef]) -> list[Secret]:
        """Fetch every reference, in order; the first failure aborts the whole set.

        Leases taken before a failure are revoked, so a half-resolved run holds nothing.
        """
        results: dict[int, Secret] = {}
        pending: dict[str, list[tuple[int, SecretRef]]] = {}
        for index, ref in enumerate(refs):
            cached = self._cached(ref)
            if cached is not None:
                results[index] = cached
            else:
                pending.setdefault(ref.scheme, []).append((index, ref))
        try:
            for scheme, items in pending.items():
                fetch = self._fetch if scheme in self._own else self._shared
                for index, ref, secret in fetch(self.provider(scheme), items):
                    results[index] = secret
                    self._store(ref, secret)
        except BaseException as exc:
            done = sorted(results)
            self.release([refs[i] for i in done], [results[i] for i in done])
            if self.suggest and isinstance(exc, NotInStore):
                raise NotInStore(exc.name, close_names(exc.name, self._known_names())) from None
            raise
        log.debug("resolved %s", ", ".join(f"{r.name} ({r.scheme})" for r in refs))
        return [results[index] for index in range(len(refs))]

    def _shared(
        self, provider: Provider, items: list[tuple[int, SecretRef]]
    ) -> Iterator[tuple[int, SecretRef, Secret]]:
        """``_fetch``, joining reads of the same source (for the same caller: see
        ``safeopen``) that other requests have in progress instead of reading again."""
        caller = safeopen.current_caller()
        led: dict[FlightKey, _Flight] = {}
        mine: list[tuple[int, SecretRef]] = []
        theirs: list[tuple[int, SecretRef, _Flight]] = []
        with self._lock:
            for index, ref in items:
                key = (caller, _key(ref))
                flight = self._flights.get(key)
                if flight is None or key in led:
                    mine.append((index, ref))
                    if flight is None:
                        led[key] = self._flights[key] = _Flight()
                else:
                    theirs.append((index, ref, flight))
        try:
            for index, ref, secret in self._fetch(provider, mine):
                flight = led.pop((caller, _key(ref)), None)
                if flight is not None:
                    self._land((caller, _key(ref)), flight, secret)
                yield index, ref, secret
        finally:
            for key, flight in led.items():  # a failure: those waiting read on their own
                self._land(key, flight, None)
        for index, ref, flight in theirs:
            flight.done.wait()
            if flight.secret is None:
                yield from self._fetch(provider, [(index, ref)])
            else:
                yield index, ref, dataclasses.replace(flight.secret, name=ref.name)

    def forget(self) -> None:
        """Reads from now on do not join those in progress: a value was just replaced
        (``secretd secret rotate``), and a run started after that must not get the old."""
        with self._lock:
            self._flights.clear()

    def _land(self, key: FlightKey, flight: _Flight, secret: Secret | None) -> None:
        with self._lock:
            if self._flights.get(key) is flight:  # else forgotten, maybe led anew
                del self._flights[key]
        flight.secret = secret if secret is not None and secret.lease_id is None else None
        flight.done.set()

    @staticmethod
    def _fetch(
        provider: Provider, items: list[tuple[int, SecretRef]]
    ) -> Iterator[tuple[int, SecretRef, Secret]]:
        """Each distinct source once: a secret mounted under several targets is read, and
        held in memory, once. A leased one is issued again for every further reference,
        since each reference holds (and later gives back) a lease of its own."""
        first: dict[tuple[str, str], tuple[int, SecretRef]] = {}
        more: list[tuple[int, SecretRef]] = []
        for index, ref in items:
            if _key(ref) in first:
                more.append((index, ref))
            else:
                first[_key(ref)] = (index, ref)
        by_source: dict[tuple[str, str], Secret] = {}
        for (index, ref), secret in zip(
            first.values(), provider.get_many([ref for _, ref in first.values()]), strict=True
        ):
            by_source[_key(ref)] = secret
            yield index, ref, secret
        leased = [(i, ref) for i, ref in more if by_source[_key(ref)].lease_id is not None]
        if leased:
            again = provider.get_many([ref for _, ref in leased])
            for (index, ref), secret in zip(leased, again, strict=True):
                yield index, ref, secret
        for index, ref in more:
            shared = by_source[_key(ref)]
            if shared.lease_id is None:
                yield index, ref, dataclasses.replace(shared, name=ref.name)

    def version(self, ref: SecretRef) -> str:
        return self.provider(ref.scheme).version(ref)

    def renew(self, ref: SecretRef, secret: Secret) -> Secret | None:
        return self.provider(ref.scheme).renew(secret)

    def release(self, refs: Sequence[SecretRef], secrets: Sequence[Secret]) -> None:
        """Revoke every leased secret; failures are logged, never raised (cleanup path)."""
        for ref, secret in zip(refs, secrets, strict=True):
            if secret.lease_id is None:
                continue
            try:
                self.provider(ref.scheme).revoke(secret)
            except SecretdError as exc:
                log.error("could not revoke the lease of %s: %s", secret.name, exc)
            except Exception as exc:  # noqa: BLE001 - a bug in one provider; revoke the others
                # Only the type: an unmapped library error may quote a request or a token.
                log.error("could not revoke the lease of %s: %s", secret.name, type(exc).__name__)

    def _known_names(self) -> list[str]:
        """The names a bare ``--secret NAME`` could have meant: bound ones and stored ones."""
        from .store import LocalStore

        try:
            stored = [info.name for info in LocalStore.from_config(self.config).list_secrets()]
        except SecretdError:
            stored = []
        return [*self.config.secrets, *stored]

    def _cached(self, ref: SecretRef) -> Secret | None:
        if self.config.cache_ttl <= 0 or ref.scheme in self._own:
            return None
        with self._lock:
            entry = self._cache.get((safeopen.current_caller(), _key(ref)))
            if entry is None or entry[0] < time.monotonic():
                return None
            return dataclasses.replace(entry[1], name=ref.name)

    def _store(self, ref: SecretRef, secret: Secret) -> None:
        if self.config.cache_ttl > 0 and secret.lease_id is None and ref.scheme not in self._own:
            with self._lock:
                key = (safeopen.current_caller(), _key(ref))
                self._cache[key] = (time.monotonic() + self.config.cache_ttl, secret)


def _key(ref: SecretRef) -> tuple[str, str]:
    """What makes two references one read: ``local:app`` names a secret or a config."""
    return ref.kind, ref.source
