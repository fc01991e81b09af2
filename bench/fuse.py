"""Open and read a 4 KiB secret through secretd's FUSE mount against the same file on a
tmpfs: medians and their ratio, with the access log on (and, for what the log costs,
off).

Usage: python bench/fuse.py [OPENS] [ROUNDS]   (as root)
The mount is served by a thread of this process, as the daemon serves it; a separate
reader process opens, reads to EOF and closes the file OPENS times per round and reports
each open+read's time, measured with ``perf_counter_ns`` around the three calls. Rounds
alternate FUSE (log on), tmpfs, FUSE (log off) and, as the peer, a minimal read-only
filesystem written with fusepy's own ``FUSE`` class (``direct_io``, its own process), so
all see the same machine load.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
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
FUSEPY = """
import errno, stat, sys
sys.path = [p for p in sys.path if p and not p.endswith("bench")]
from fuse import FUSE, FuseOSError, Operations
value = bytes.fromhex(sys.argv[2])

class Minimal(Operations):
    use_ns = True

    def getattr(self, path, fh=None):
        if path == "/":
            return {"st_mode": stat.S_IFDIR | 0o755, "st_nlink": 2}
        if path == "/api_key":
            return {"st_mode": stat.S_IFREG | 0o400, "st_nlink": 1, "st_size": len(value)}
        raise FuseOSError(errno.ENOENT)

    def open(self, path, fi):
        fi.direct_io = 1
        return 0

    def read(self, path, size, offset, fi):
        return value[offset : offset + size]

FUSE(Minimal(), sys.argv[1], foreground=True, allow_other=True, raw_fi=True)
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
        peer, peer_dir = _fusepy_peer(tmp, value)
        ways = ("fuse", "tmpfs", "fuse, no log", "fusepy's FUSE class, minimal")
        samples: dict[str, list[float]] = {way: [] for way in ways}
        try:
            paths = dict(zip(ways, (
                served.secrets_path / "api_key", tmpfs.secrets_path / "api_key",
                served.secrets_path / "api_key", peer_dir / "api_key",
            ), strict=True))  # fmt: skip
            assert all(path.read_bytes() == value for path in paths.values())
            for _ in range(rounds):
                for way, path in paths.items():
                    accesslog.configure(None if way == "fuse, no log" else tmp / "state")
                    samples[way] += read_times(path, opens)
        finally:
            accesslog.configure(None)
            served.remove()
            tmpfs.remove()
            subprocess.run(["umount", str(peer_dir)], check=False)
            peer.wait(30)
    return samples


def _fusepy_peer(tmp: Path, value: bytes) -> tuple[subprocess.Popen[bytes], Path]:
    """The peer: fusepy's FUSE class serving the same file, in a process of its own."""
    mountpoint = tmp / "fusepy"
    mountpoint.mkdir()
    argv = [sys.executable, "-c", FUSEPY, str(mountpoint), value.hex()]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not os.path.ismount(mountpoint):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the fusepy peer did not mount")
        time.sleep(0.05)
    return proc, mountpoint


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
