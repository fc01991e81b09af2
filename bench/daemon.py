"""The daemon: `secretd run` latency through it vs in-process, `resolve-check` throughput
with 1, 8 and 64 concurrent clients, and its memory idle and after 10,000 requests.

Usage: python bench/daemon.py [ROUNDS] [SECONDS]
Runs as root (the daemon launches sandboxes). Prints medians, ratios and rates; compare
ratios, not absolute figures, between runs (the machine is shared).
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _timing import SECRETD, interleaved, report, scratch_env  # noqa: E402

from secretd import protocol  # noqa: E402

CHECK = protocol.request("resolve-check", secrets=["api_key"])


def resolve_check(path: str) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)
        chan = protocol.Channel(sock)
        chan.send(CHECK)
        reply, _ = chan.receive(10)
    if reply.get("ok") is not True or not reply["secrets"][0]["allowed"]:
        raise SystemExit(f"resolve-check failed: {reply}")


def _worker(path: str, seconds: float, start: float, counts: multiprocessing.Queue) -> None:
    while time.monotonic() < start:
        time.sleep(0.001)
    done, deadline = 0, start + seconds
    while time.monotonic() < deadline:
        resolve_check(path)
        done += 1
    counts.put(done)


def throughput(path: str, clients: int, seconds: float) -> tuple[float, int]:
    """Requests per second over ``clients`` processes, each one request per connection."""
    counts: multiprocessing.Queue = multiprocessing.Queue()
    start = time.monotonic() + 0.5
    workers = [
        multiprocessing.Process(target=_worker, args=(path, seconds, start, counts))
        for _ in range(clients)
    ]
    for worker in workers:
        worker.start()
    total = sum(counts.get(timeout=seconds + 30) for _ in workers)
    for worker in workers:
        worker.join()
    return total / seconds, total


def rss_kib(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "Threads"):
            fields[key] = int(value.split()[0])
    return fields


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 3.0
    with tempfile.TemporaryDirectory(prefix="secretd-bench-") as tmp:
        env = scratch_env(tmp)
        sock = f"{tmp}/run/secretd.sock"
        secretd = SECRETD
        daemon = subprocess.Popen([*secretd, "--log-level", "warning", "daemon"], env=env, cwd=tmp)
        try:
            deadline = time.monotonic() + 10
            while not os.path.exists(sock) and time.monotonic() < deadline:
                time.sleep(0.02)
            resolve_check(sock)
            idle = rss_kib(daemon.pid)
            args = ["--secret", "api_key", "--", "true"]
            commands = {
                "through the daemon": ([*secretd, "run", *args], env),
                "in-process": ([*secretd, "run", "--no-daemon", *args], env),
            }
            medians = interleaved(commands, rounds)
            report(f"secretd run --secret api_key -- true, {rounds} rounds:", medians, "in-process")
            print(f"resolve-check, one request per connection, {seconds:.0f} s each:")
            served = 0
            for clients in (1, 8, 64):
                rate, total = throughput(sock, clients, seconds)
                served += total
                print(f"  {clients:>2} concurrent clients  {rate:8.0f} requests/s")
            while served < 10_000:
                served += throughput(sock, 8, 1.0)[1]
            after = rss_kib(daemon.pid)
            print(
                f"daemon RSS: idle {idle['VmRSS'] / 1024:.1f} MiB; after {served} requests "
                f"{after['VmRSS'] / 1024:.1f} MiB (peak {after['VmHWM'] / 1024:.1f} MiB, "
                f"{after['Threads']} threads)"
            )
        finally:
            daemon.terminate()
            daemon.wait(20)


if __name__ == "__main__":
    main()
