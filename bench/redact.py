"""Throughput of `secretd redact` on 100 MB with 50 secrets, against `cat` (the pipe's
ceiling) and `sed` with one `s///` per secret (a peer that masks raw values only).

Usage: python bench/redact.py [MB] [ROUNDS] [--matchers]
Prints the median MB/s of each, interleaved, plus the redactor module alone (in-process,
64 KiB writes). `--matchers` also times the matchers considered for the module on the same
data: ahocorasick-rs (used), pyahocorasick and one `re` alternation of the escaped forms
(slow: about half a minute for 100 MB).
"""

from __future__ import annotations

import base64
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1]))
from _timing import SECRETD, environment, interleaved_samples  # noqa: E402

from secretd.redact import Redactable, Redactor, forms  # noqa: E402

SECRETS = 50
CHUNK = 1 << 16
LINE = b"2026-12-01T00:00:%02d INFO step %05d: compiling src/module_%03d.py ... ok (%d ms)\n"


def make_values(rng: random.Random) -> list[bytes]:
    return [base64.b64encode(rng.randbytes(24)) for _ in range(SECRETS)]


def make_log(path: Path, megabytes: int, values: list[bytes], rng: random.Random) -> None:
    """A build log; one line in 200 leaks a value, raw or in one of its encoded forms."""
    encoded = [sorted(forms(value)) for value in values]
    size = megabytes * 1_000_000
    with path.open("wb") as out:
        written, block = 0, bytearray()
        for index in range(size // 60 + 1):
            block += LINE % (index % 60, index % 100_000, index % 1000, index % 997)
            if index % 200 == 0:
                block += b"leak: " + rng.choice(rng.choice(encoded)) + b"\n"
            if len(block) >= 1 << 20:
                written += out.write(block[: size - written])
                block.clear()
            if written >= size:
                return
        out.write(block[: size - written])


def stdin_timer(argv: list[str], path: Path, env: dict[str, str]) -> Callable[[], float]:
    def run() -> float:
        with path.open("rb") as stdin:
            start = time.perf_counter()
            done = subprocess.run(argv, stdin=stdin, stdout=subprocess.DEVNULL, env=env)
            elapsed = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"benchmark command failed: {argv[:3]}")
        return elapsed

    return run


def module_timer(path: Path, values: list[bytes]) -> Callable[[], float]:
    def run() -> float:
        data = path.read_bytes()
        start = time.perf_counter()
        redactor = Redactor(Redactable(f"s{i}", value) for i, value in enumerate(values))
        for offset in range(0, len(data), CHUNK):
            redactor.write(data[offset : offset + CHUNK])
        redactor.flush()
        return time.perf_counter() - start

    return run


def matchers(path: Path, values: list[bytes], megabytes: int) -> None:
    """Find every occurrence of every form, 64 KiB at a time, with each matcher considered:
    ahocorasick-rs (used), pyahocorasick (if installed) and one `re` alternation."""
    import ahocorasick_rs

    patterns = sorted({form for value in values for form in forms(value)}, key=len, reverse=True)
    data = path.read_bytes()
    chunks = [data[offset : offset + CHUNK] for offset in range(0, len(data), CHUNK)]
    rust = ahocorasick_rs.BytesAhoCorasick(
        patterns, implementation=ahocorasick_rs.Implementation.DFA
    )
    alternation = re.compile(b"|".join(re.escape(pattern) for pattern in patterns))
    counters: dict[str, Callable[[bytes], int]] = {
        "ahocorasick-rs": lambda chunk: len(rust.find_matches_as_indexes(chunk, overlapping=True)),
        "re alternation": lambda chunk: sum(1 for _ in alternation.finditer(chunk)),
    }
    try:
        import ahocorasick
    except ImportError:
        print("  (pyahocorasick is not installed: pip install pyahocorasick to compare it)")
    else:
        automaton = ahocorasick.Automaton(ahocorasick.STORE_LENGTH)
        for pattern in patterns:
            automaton.add_word(pattern.decode("latin-1"))  # its PyPI build matches str only
        automaton.make_automaton()
        counters["pyahocorasick"] = lambda chunk: sum(
            1 for _ in automaton.iter(chunk.decode("latin-1"))
        )
    print(f"matchers, {len(patterns)} forms of {len(values)} values, one run:")
    for name, count in counters.items():
        start = time.perf_counter()
        found = sum(count(chunk) for chunk in chunks)
        seconds = time.perf_counter() - start
        print(f"  {name:<16} {megabytes / seconds:8.1f} MB/s  ({found} matches)")


def main() -> None:
    args = [arg for arg in sys.argv[1:] if not arg.startswith("--")]
    megabytes = int(args[0]) if args else 100
    rounds = int(args[1]) if len(args) > 1 else 3
    rng = random.Random(15)
    values = make_values(rng)
    with tempfile.TemporaryDirectory(prefix="secretd-bench-") as tmp:
        log = Path(tmp) / "build.log"
        make_log(log, megabytes, values, rng)
        env = environment(SECRETD_STATE_DIR=f"{tmp}/state", SECRETD_RUNTIME_DIR=f"{tmp}/run")
        refs: list[str] = []
        for index, value in enumerate(values):
            env[f"BENCH_S{index}"] = value.decode()
            refs += ["--secret", f"s{index}=env:BENCH_S{index}"]
        sed = ["sed"] + [arg for v in values for arg in ("-e", f"s|{v.decode()}|[MASKED]|g")]
        timers = {
            "secretd redact": stdin_timer([*SECRETD, "redact", *refs], log, env),
            "module alone": module_timer(log, values),
            "cat": stdin_timer(["cat"], log, env),
            "sed, 50 s///g": stdin_timer(sed, log, env),
        }
        samples = interleaved_samples(timers, rounds, warmup=0)
        print(f"redaction of {megabytes} MB with {SECRETS} secrets, {rounds} rounds (median MB/s):")
        for name, seconds in samples.items():
            print(f"  {name:<16} {megabytes / statistics.median(seconds):8.1f} MB/s")
        if "--matchers" in sys.argv:
            matchers(log, values, megabytes)


if __name__ == "__main__":
    main()
