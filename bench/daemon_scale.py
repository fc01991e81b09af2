"""The daemon under a long stream of `resolve-check` requests: its memory idle and after
10,000, 50,000 and 100,000 requests (flat, or it leaks), the rate at 64 clients, and the
daemon's CPU per request against the machine's (where the ceiling comes from).

The load is bench/daemon.py's (N connections in flight from one process per CPU, one
request each, every reply checked). The daemon's CPU is split into user and system time:
system time is the kernel's, mostly the sockets and, with threads, their hand-offs.

Usage: python bench/daemon_scale.py [CLIENTS] [REQUESTS]
Prints one line per step; the numbers go in docs/benchmarks.md.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _timing import scratch_env, secretd_daemon  # noqa: E402
from daemon import resolve_check, rss_kib, throughput  # noqa: E402

STEPS = (10_000, 50_000, 100_000)
TICK = os.sysconf("SC_CLK_TCK")


def cpu_split(pid: int) -> tuple[float, float]:
    """User and system seconds of ``pid`` so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def cpu_seconds(pid: int) -> float:
    """User and system time of ``pid`` so far (all its threads)."""
    return sum(cpu_split(pid))


def machine_busy() -> float:
    """Seconds of CPU the whole machine has spent busy (all cores), from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / TICK


def main() -> None:
    clients = int(sys.argv[1]) if len(sys.argv) > 1 else 64
    last = int(sys.argv[2]) if len(sys.argv) > 2 else STEPS[-1]
    with tempfile.TemporaryDirectory(prefix="secretd-bench-") as tmp:
        env = scratch_env(tmp)
        sock = f"{tmp}/run/secretd.sock"
        with secretd_daemon(env, Path(tmp, "run"), Path(tmp)) as pid:
            if pid is None:
                raise SystemExit("secretd daemon did not start")
            resolve_check(sock)
            time.sleep(1)
            print(f"idle: VmRSS {rss_kib(pid)['VmRSS'] / 1024:.1f} MiB")
            served, (user, system), busy = 0, cpu_split(pid), machine_busy()
            for step in (s for s in STEPS if s <= last):
                started = time.monotonic()
                while served < step:
                    served += throughput(sock, clients, 2.0)[1]
                took = time.monotonic() - started
                now_user, now_system = cpu_split(pid)
                used, all_used = now_user + now_system - user - system, machine_busy() - busy
                memory = rss_kib(pid)
                print(
                    f"after {served:,} requests ({clients} clients): VmRSS "
                    f"{memory['VmRSS'] / 1024:.1f} MiB, peak {memory['VmHWM'] / 1024:.1f} MiB, "
                    f"{memory['Threads']} threads; daemon CPU {1e6 * used / served:.0f} us a "
                    f"request ({1e6 * (now_system - system) / served:.0f} us system), "
                    f"{100 * used / all_used:.0f}% of the machine's busy time; "
                    f"{took:.0f} s for this step"
                )


if __name__ == "__main__":
    main()
