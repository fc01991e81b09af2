"""Open and read a 4 KiB secret through secretd's FUSE mount against the same file on a
tmpfs: medians and their ratio, with the access log on (and, for what the log costs,
off).

Usage: python bench/fuse.py [OPENS] [ROUNDS]   (as root)
The mount is served by a thread of this process, as the daemon serves it; a separate
reader process opens, reads to EOF and closes the file OPENS times per round and reports
each open+read's time, measured with ``perf_counter_ns`` around the three calls. Rounds
alternate FUSE (log on), tmpfs and FUSE (log off) so all three see the same machine load.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

# This file is named like fusepy's module: keep bench/ off the path so "import fuse" is
# fusepy's.
HERE = Path(__file__).resolve().parent
sys.path[:] = [str(HERE.parent), *(p for p in sys.path if Path(p or ".").resolve() != HERE)]
from secretd import accesslog  # noqa: E402
from secretd.mount.fuse import FuseMount  # noqa: E402
from secretd.mount.tmpfs import HostMount  # noqa: E402
from secretd.spec import SecretFile, SecretMount  # noqa: E402

SIZE = 4096
TARGET_MS = 0.5
READER = """
import os, sys, time
path, count = sys.argv[1], int(sys.argv[2])
clock, out = time.perf_counter_ns, []
for _ in range(count):
    start = clock()
    fd = os.open(path, os.O_RDONLY)
    while os.read(fd, 65536):
        pass
    os.close(fd)
    out.append(clock() - start)
print(" ".join(map(str, out)))
"""


def read_times(path: Path, count: int) -> list[float]:
    """Seconds per open+read+close, measured in a reader process."""
    result = subprocess.run(
        [sys.executable, "-c", READER, str(path), str(count)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return [int(ns) / 1e9 for ns in result.stdout.split()]


def measure(opens: int = 2000, rounds: int = 5) -> dict[str, list[float]]:
    """Per open+read seconds of each way, ``rounds`` interleaved batches of ``opens``."""
    value = os.urandom(SIZE // 2).hex().encode()
    mount = SecretMount((SecretFile("api_key", value, mode=0o400),), 0)
    with tempfile.TemporaryDirectory(prefix="secretd-bench-fuse-") as name:
        tmp = Path(name)
        served = FuseMount.create(tmp / "run", mount)
        tmpfs = HostMount.create(tmp / "run", mount)
        samples: dict[str, list[float]] = {"fuse": [], "tmpfs": [], "fuse, no log": []}
        try:
            paths = {
                "fuse": served.secrets_path / "api_key",
                "tmpfs": tmpfs.secrets_path / "api_key",
                "fuse, no log": served.secrets_path / "api_key",
            }
            assert paths["fuse"].read_bytes() == paths["tmpfs"].read_bytes() == value
            for _ in range(rounds):
                for way, path in paths.items():
                    accesslog.configure(None if way == "fuse, no log" else tmp / "state")
                    samples[way] += read_times(path, opens)
        finally:
            accesslog.configure(None)
            served.remove()
            tmpfs.remove()
    return samples


def report_lines(opens: int = 2000, rounds: int = 5) -> list[str]:
    """The markdown table bench/report.py puts in REPORT.md."""
    samples = measure(opens, rounds)
    base = statistics.median(samples["tmpfs"])
    lines = [
        "| open+read of a 4 KiB secret | median | p90 | against tmpfs |",
        "|---|---:|---:|---:|",
    ]
    for way, times in samples.items():
        median = statistics.median(times)
        p90 = statistics.quantiles(times, n=10)[-1]
        lines.append(
            f"| {way} | {median * 1e6:.0f} us | {p90 * 1e6:.0f} us | {median / base:.1f}x |"
        )
    fuse = statistics.median(samples["fuse"]) * 1000
    verdict = "under" if fuse < TARGET_MS else "OVER"
    lines += ["", f"FUSE with the access log: {fuse:.3f} ms median, {verdict} {TARGET_MS} ms."]
    return lines


def main() -> None:
    if os.geteuid() != 0:
        raise SystemExit("bench/fuse.py needs root (a tmpfs and an allow_other FUSE mount)")
    opens = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    print("\n".join(report_lines(opens, rounds)))


if __name__ == "__main__":
    main()
