"""The daemon: `secretd run` latency through it vs in-process, `resolve-check` throughput
with 1, 8 and 64 concurrent clients, and its memory idle and after 10,000 requests.

Usage: python bench/daemon.py [ROUNDS] [SECONDS]
Runs as root (the daemon launches sandboxes). Prints medians, ratios and rates; compare
ratios, not absolute figures, between runs (the machine is shared).

How the load is made: N clients are N connections in flight at once, each one request
per connection (connect, send, read the whole reply, close), so the daemon does for every
request what it does for a real client: accept, peer credentials, policy, one frame read
and parsed, the store asked, one reply. The clients themselves must cost less than the
daemon, or the figure is theirs: with a Python process per client encoding JSON through
``protocol.Channel``, 64 processes took most of the machine's two cores. So the request is
encoded once, and one process per CPU keeps its share of the N connections going with
``epoll``; a reply counts only if it is byte for byte the one checked first (``ok`` and
``allowed``, parsed by ``protocol``).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import select
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _timing import SECRETD, interleaved, report, scratch_env, secretd_daemon  # noqa: E402

from secretd import protocol  # noqa: E402

_CHECK = protocol.request("resolve-check", secrets=["api_key"])
_PAYLOAD = json.dumps(_CHECK, separators=(",", ":")).encode()
REQUEST = protocol.HEADER.pack(len(_PAYLOAD)) + _PAYLOAD


def resolve_check(path: str) -> bytes:
    """One ``resolve-check`` of ``api_key``, checked; the reply's bytes, header included."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)
        sock.sendall(REQUEST)
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    (length,) = protocol.HEADER.unpack(data[: protocol.HEADER.size])
    reply = json.loads(data[protocol.HEADER.size :])
    if length != len(data) - protocol.HEADER.size or reply.get("ok") is not True:
        raise SystemExit(f"resolve-check failed: {data[:300]!r}")
    if not reply["secrets"][0]["allowed"]:
        raise SystemExit(f"resolve-check refused: {reply}")
    return data


def _clients(
    path: str,
    inflight: int,
    seconds: float,
    start: float,
    reply: bytes,
    counts: multiprocessing.Queue,
) -> None:
    """Keep ``inflight`` requests going, a new connection as each reply is complete."""
    poll, open_ = select.epoll(), {}

    def ask() -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        sock.sendall(REQUEST)
        poll.register(sock.fileno(), select.EPOLLIN)
        open_[sock.fileno()] = (sock, b"")

    while time.monotonic() < start:
        time.sleep(0.001)
    done, deadline = 0, start + seconds
    for _ in range(inflight):
        ask()
    while open_:
        for fd, _ in poll.poll(10):
            sock, data = open_.pop(fd)
            chunk = sock.recv(4096)
            data += chunk
            if chunk and len(data) < len(reply):
                open_[fd] = (sock, data)
                continue
            sock.close()  # which takes it out of the poll
            if data != reply:
                raise SystemExit(f"resolve-check failed: {data[:300]!r}")
            done += 1
            if time.monotonic() < deadline:
                ask()
    counts.put(done)


def throughput(path: str, clients: int, seconds: float) -> tuple[float, int]:
    """Requests per second with ``clients`` connections in flight, one request each, from
    one process per CPU (at most one per client)."""
    reply = resolve_check(path)
    counts: multiprocessing.Queue = multiprocessing.Queue()
    start = time.monotonic() + 0.5
    procs = min(clients, os.cpu_count() or 1)
    workers = [
        multiprocessing.Process(
            target=_clients,
            args=(path, clients // procs + (n < clients % procs), seconds, start, reply, counts),
        )
        for n in range(procs)
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
        with secretd_daemon(env, Path(tmp, "run"), Path(tmp)) as pid:
            if pid is None:
                raise SystemExit("secretd daemon did not start")
            resolve_check(sock)
            idle = rss_kib(pid)
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
            after = rss_kib(pid)
            print(
                f"daemon RSS: idle {idle['VmRSS'] / 1024:.1f} MiB; after {served} requests "
                f"{after['VmRSS'] / 1024:.1f} MiB (peak {after['VmHWM'] / 1024:.1f} MiB, "
                f"{after['Threads']} threads)"
            )


if __name__ == "__main__":
    main()
