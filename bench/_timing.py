"""Shared timing for the benchmarks: interleaved runs, medians, ratios.

The machine is shared and noisy, so peers are measured in the same run, alternating
(A B A B ...), and only ratios are meant to be compared between runs.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

# The secretd command as users start it: the script tools/setup-host.sh writes beside this
# interpreter (python -IS and the thin client, secretd/thin.py), else the module.
_SCRIPT = os.path.join(os.path.dirname(sys.executable), "secretd")
SECRETD = [_SCRIPT] if os.access(_SCRIPT, os.X_OK) else [sys.executable, "-m", "secretd"]
Timer = Callable[[], float]


def environment(**extra: str) -> dict[str, str]:
    """This environment without ``PYTHONDONTWRITEBYTECODE`` (installed packages carry
    their bytecode; with it set, every start would compile secretd again), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return env | extra


def scratch_env(tmp: str) -> dict[str, str]:
    """An environment whose secretd state lives under ``tmp``, with ``api_key`` stored."""
    env = environment(SECRETD_STATE_DIR=f"{tmp}/state", SECRETD_RUNTIME_DIR=f"{tmp}/run")
    subprocess.run(
        [*SECRETD, "secret", "create", "api_key", "-"],
        input=b"bench-value", env=env, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return env


def time_once(argv: Sequence[str], env: Mapping[str, str] | None = None) -> float:
    start = time.perf_counter()
    result = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"benchmark command failed: {argv[0]}: {result.stderr.decode()[-300:]}")
    return elapsed


class Command:
    """A timer that runs ``argv`` once and returns its wall seconds, and keeps the CPU
    seconds each run took (its processes', and the daemon's when given its pid). Wall
    time grows with the load of a shared machine; CPU time barely does."""

    def __init__(
        self, argv: Sequence[str], env: Mapping[str, str] | None = None, daemon: int | None = None
    ) -> None:
        self.argv, self.env, self.daemon = list(argv), env, daemon
        self.cpu: list[float] = []

    def __call__(self) -> float:
        before = cpu_seconds(self.daemon)
        elapsed = time_once(self.argv, self.env)
        self.cpu.append(cpu_seconds(self.daemon) - before)
        return elapsed


def cpu_seconds(daemon: int | None = None) -> float:
    """CPU seconds of this process's waited-for children, plus the daemon's so far."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = used.ru_utime + used.ru_stime
    if daemon is not None:
        with open(f"/proc/{daemon}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def command(
    argv: Sequence[str], env: Mapping[str, str] | None = None, daemon: int | None = None
) -> Command:
    """A timer that runs ``argv`` once and returns its wall seconds (see Command)."""
    return Command(argv, env, daemon)


def interleaved_samples(
    timers: Mapping[str, Timer], rounds: int, warmup: int = 2
) -> dict[str, list[float]]:
    """Wall seconds of each timer, taken in turn (A B C A B C ...) ``rounds`` times after
    ``warmup`` rounds that are not kept."""
    samples: dict[str, list[float]] = {name: [] for name in timers}
    for index in range(warmup + rounds):
        for name, timer in timers.items():
            elapsed = timer()
            if index >= warmup:
                samples[name].append(elapsed)
    return samples


def interleaved(
    commands: Mapping[str, tuple[Sequence[str], Mapping[str, str] | None]],
    rounds: int,
    warmup: int = 2,
) -> dict[str, float]:
    """Median wall seconds of each command, run in turn ``rounds`` times after a warm-up."""
    timers = {name: command(argv, env) for name, (argv, env) in commands.items()}
    samples = interleaved_samples(timers, rounds, warmup)
    return {name: statistics.median(values) for name, values in samples.items()}


def report(title: str, medians: Mapping[str, float], baseline: str) -> None:
    print(title)
    base = medians[baseline]
    width = max(len(name) for name in medians)
    for name, value in medians.items():
        print(f"  {name:<{width}}  median {value * 1000:8.1f} ms   {value / base:6.2f}x {baseline}")


@contextmanager
def secretd_daemon(
    env: Mapping[str, str], runtime_dir: Path, cwd: Path | None = None
) -> Iterator[int | None]:
    """``secretd daemon`` on the runtime dir's socket, where ``secretd run`` looks first
    (started in ``cwd``, whose ``secretd.toml`` it reads); yields its pid once it listens,
    ``None`` if it did not start."""
    sock = runtime_dir / "secretd.sock"
    proc = subprocess.Popen(
        [sys.executable, "-m", "secretd", "--log-level", "warning", "daemon", "--socket",
         str(sock)],
        env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while not sock.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield proc.pid if sock.exists() else None
    finally:
        proc.terminate()
        proc.wait(20)
        sock.unlink(missing_ok=True)
