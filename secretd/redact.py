"""Redact secret values from a stream of bytes: the one redactor for ``run``, ``logs`` and
``secretd redact`` (docs/redaction.md).

A value is caught in every form a job log tends to show it in: raw, each line of a
multi-line value, base64 and base64url at the three byte offsets, lower and upper hex,
URL-encoded and JSON-escaped. All occurrences of all forms are found at once by one
Aho-Corasick automaton over bytes (``ahocorasick-rs``: on 100 MB with 50 secrets it
matched about 8x faster than ``pyahocorasick`` and 150x faster than one ``re``
alternation; docs/redaction.md); overlapping or adjacent occurrences become one
replacement, so no part of an overlapped form is left behind.

The stream is bytes and stays bytes: nothing is decoded, so binary passes through
unchanged. A value split across writes is still caught: at most
the longest form minus one byte is held back, less where a newline ends every possible
match; ``flush()`` (the caller's idle timer, or end of input) releases the rest.
"""

from __future__ import annotations

import base64
import copy
import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from urllib.parse import quote, quote_plus

from .spec import Secret

log = logging.getLogger(__name__)

MIN_LENGTH = 8
"""Values (and lines of values) shorter than this are not redacted: masking every ``true``
or ``8080`` in a log would hide more than it protects, and a short value is guessable."""

MAX_LENGTH = 64 * 1024
MAX_TOTAL = 256 * 1024
"""A value longer than ``MAX_LENGTH``, or one that would take the values given every form
past ``MAX_TOTAL`` bytes, is masked by its lines (of ``MIN_LENGTH`` to ``MAX_LENGTH``
bytes) only: a value's forms come to about ten times its size in patterns, and for the
500 KiB secrets a run may hold the automaton took seconds and a hundred megabytes in the
daemon, per run (building it takes about 3 s per MiB of values here). Tokens, keys,
certificate chains and credential files are well under."""

REPLACEMENT = b"[MASKED]"

# A DFA matches fastest (about 1.25x a contiguous NFA here) but takes (states x byte
# classes) memory and, for long repetitive values, a time that grows faster than their
# length: 2.5 s for 4 KiB of one byte repeated, a minute for 16 KiB, where the NFA takes
# milliseconds. Beyond this many pattern bytes (a few dozen tokens fit) the NFA is used;
# the library's own choice ("auto") still picks the DFA for a few long patterns.
_DFA_MAX_PATTERN_BYTES = 16 * 1024


@dataclass(frozen=True)
class Redactable:
    """One value to redact: ``name`` is what warnings say, ``redact=False`` opts it out."""

    name: str
    value: bytes = field(repr=False)
    redact: bool = True


def redactables(secrets: Iterable[Secret]) -> list[Redactable]:
    """One ``Redactable`` per value: a tree secret's files are ``NAME/KEY``."""
    found: list[Redactable] = []
    for secret in secrets:
        if secret.tree is None:
            found.append(Redactable(secret.name, secret.value))
        else:
            found.extend(Redactable(f"{secret.name}/{key}", v) for key, v in secret.tree.items())
    return found


def forms(value: bytes) -> set[bytes]:
    """Every form of ``value`` the redactor looks for, each at least ``MIN_LENGTH`` bytes.

    Base64 forms are the part of the encoding that does not depend on the bytes around the
    value, for each of the three positions the value can take in a 3-byte group (as
    GitHub's runner does), so a value inside a larger base64 text is found too.
    """
    found = {value, value.hex().encode(), value.hex().upper().encode()}
    lines = value.splitlines()
    if len(lines) > 1:
        found.update(lines)
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        found.update(_base64_middles(value, encode))
    found.update(
        text.encode("ascii")
        for text in (quote(value, safe=""), quote(value), quote_plus(value))
    )
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        pass  # JSON cannot carry it as a string
    else:
        found.add(json.dumps(text)[1:-1].encode("ascii"))
        found.add(json.dumps(text, ensure_ascii=False)[1:-1].encode("utf-8"))
    return {form for form in found if len(form) >= MIN_LENGTH}


def lines(value: bytes) -> set[bytes]:
    """What is masked of a text too long for every form: its lines, as written. (A long
    binary value has no lines worth the name, only random cuts of it, whose automaton
    took 15 MB for 500 KB; it is not masked.)"""
    return {line for line in value.splitlines() if MIN_LENGTH <= len(line) <= MAX_LENGTH}


def _is_text(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _base64_middles(value: bytes, encode: Callable[[bytes], bytes]) -> Iterator[bytes]:
    """The characters of ``encode(prefix + value + suffix)`` made of ``value``'s bits alone,
    for a prefix of 0, 1 and 2 bytes: character ``j`` holds bits ``6j`` to ``6j+6``."""
    for offset in range(3):
        padded = bytes(offset) + value
        text = encode(padded + bytes(-len(padded) % 3))
        first = -(-8 * offset // 6)
        last = 8 * len(padded) // 6
        yield text[first:last]


class Redactor:
    """A streaming redactor: ``write()`` returns what may be shown now, ``flush()`` the rest.

    The output of any sequence of writes, without a ``flush()`` in between, is the same as
    that of one write of their concatenation.

    Args:
        values: the values to redact; those under ``MIN_LENGTH`` bytes get one warning
            each (naming the secret) and are not redacted.
        replacement: what stands for each masked run.
        warn: takes each warning (default: this module's logger); a daemon passes one
            that writes to its client's stderr, where the user sees it.
    """

    def __init__(
        self,
        values: Iterable[Redactable],
        replacement: bytes = REPLACEMENT,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.replacement = replacement
        self._warn = warn or log.warning
        self._lock = threading.Lock()  # add() may come from another thread than write()
        self._warned: set[str] = set()  # names already warned about (short or long)
        self._full = 0  # bytes of the values masked in every form
        self._use(self._forms(values))
        self._tail = b""  # the bytes a future match may still start in
        self._shown = 0  # how many of them were already output (plain or masked)
        self._mask_open = False  # the output ends with a replacement ending at _shown

    def _forms(self, values: Iterable[Redactable]) -> set[bytes]:
        patterns: set[bytes] = set()
        for item in values:
            if not item.redact:
                continue
            if len(item.value) < MIN_LENGTH:
                if item.name not in self._warned:
                    self._warned.add(item.name)
                    self._warn(
                        f"secret {item.name!r} is shorter than {MIN_LENGTH} bytes: not redacted"
                    )
                continue
            if len(item.value) <= MAX_LENGTH and self._full + len(item.value) <= MAX_TOTAL:
                self._full += len(item.value)
                patterns.update(forms(item.value))
                continue
            text = _is_text(item.value)
            if item.name not in self._warned:
                self._warned.add(item.name)
                why = (
                    f"is longer than {MAX_LENGTH} bytes"
                    if len(item.value) > MAX_LENGTH
                    else f"takes the secrets past {MAX_TOTAL} bytes"
                )
                done = "only its lines are redacted" if text else "binary, not redacted"
                self._warn(f"secret {item.name!r} {why}: {done}")
            if text:
                patterns.update(lines(item.value))
        return patterns

    def _use(self, patterns: set[bytes]) -> None:
        import ahocorasick_rs  # here: a run without redaction does not load it

        small = sum(map(len, patterns)) <= _DFA_MAX_PATTERN_BYTES
        kind = ahocorasick_rs.Implementation
        self._automaton = ahocorasick_rs.BytesAhoCorasick(
            sorted(patterns), implementation=kind.DFA if small else kind.ContiguousNFA
        )
        self._patterns = frozenset(patterns)
        self.longest = max(map(len, patterns), default=0)
        # no form spans a newline: nothing after it can complete a match before it
        self._newline_ends = not any(b"\n" in form for form in patterns)

    def add(self, values: Iterable[Redactable]) -> None:
        """Also mask ``values`` from now on (a value swapped in while a command runs);
        bytes held back are matched against them too."""
        new = self._forms(values) - self._patterns
        if new:
            with self._lock:
                self._use(set(self._patterns) | new)

    def stream(self) -> Redactor:
        """A redactor for another stream: the same values (and automaton), its own state."""
        other = copy.copy(self)
        other._tail, other._shown, other._mask_open = b"", 0, False
        other._lock = threading.Lock()
        return other

    @property
    def held(self) -> int:
        """How many bytes were written but not yet output."""
        return len(self._tail) - self._shown

    def write(self, data: bytes) -> bytes:
        """Take the next bytes of the stream; return the redacted bytes that are final."""
        with self._lock:
            return self._process(data, final=False) if self.longest else data

    def flush(self) -> bytes:
        """Output everything held back (after an idle moment, or at the end of input).

        A value whose first part is flushed before the rest arrives loses that first part
        to the output; the rest is still masked.
        """
        with self._lock:
            return self._process(b"", final=True) if self.longest else b""

    def _process(self, data: bytes, *, final: bool) -> bytes:
        buf = self._tail + data
        end = len(buf)
        if final:
            cut = end
        else:
            cut = max(end - self.longest + 1, 0)
            if self._newline_ends:
                cut = max(cut, buf.rfind(b"\n") + 1)
        out = bytearray()
        shown, mask_open = self._shown, self._mask_open
        for start, stop in self._runs(buf):
            if start >= cut:
                break  # a later byte may extend it: decide next time
            if stop <= shown:
                continue
            if start <= shown and mask_open:
                shown = stop  # the replacement already written covers it
                continue
            out += buf[shown:start]
            out += self.replacement
            shown, mask_open = stop, True
        if cut > shown:
            out += buf[shown:cut]
            shown, mask_open = cut, False
        keep = max(end - self.longest + 1, 0) if final else cut
        self._tail = buf[keep:]
        self._shown = shown - keep
        self._mask_open = mask_open
        return bytes(out)

    def _runs(self, buf: bytes) -> Iterator[tuple[int, int]]:
        """Every occurrence of every form in ``buf``, overlapping or touching ones merged,
        as ``(start, stop)`` in order."""
        spans = sorted(
            (start, stop)
            for _, start, stop in self._automaton.find_matches_as_indexes(buf, overlapping=True)
        )
        run: tuple[int, int] | None = None
        for start, stop in spans:
            if run is not None and start <= run[1]:
                run = (run[0], max(run[1], stop))
                continue
            if run is not None:
                yield run
            run = (start, stop)
        if run is not None:
            yield run


def redact(data: bytes, values: Iterable[Redactable], replacement: bytes = REPLACEMENT) -> bytes:
    """``data`` with every form of every value replaced: a whole stream at once."""
    redactor = Redactor(values, replacement)
    return redactor.write(data) + redactor.flush()
