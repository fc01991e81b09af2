"""The benchmark report: secretd against `unshare`, bare `runc run`, `podman run --secret`,
`docker run` and a one-task Docker Swarm service, measured side by side in one run
(interleaved: A B C ... A B C ...), written to bench/REPORT.md and bench/report.png.

Usage (as root): python bench/report.py [ROUNDS]     (`make bench`; ~3 minutes, 25 rounds)

Every peer does the same job: start, read a secret at /run/secrets/api_key, exit (the host
group runs `true` with the secret mounted). The real engines are used: a dockerd that
answers at DOCKER_HOST or /var/run/docker.sock, else a private one started for the run and
stopped afterwards; podman with its own storage; a swarm initialised for the run if the
engine is not in one (and left afterwards). secretd runs in-process (``--no-daemon``) and
through a ``secretd daemon`` started for the run; then the FUSE mount (bench/fuse.py) and
upstream reads for concurrent runs of one OpenBao secret (bench/single_flight.py). The
machine is shared and noisy: compare the ratios, not the milliseconds, between runs.
"""

from __future__ import annotations

import datetime
import os
import platform
import shutil
import statistics
import subprocess
import sys
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(BENCH), str(ROOT)]
from _timing import (  # noqa: E402
    SECRETD,
    Command,
    Timer,
    command,
    environment,
    interleaved_samples,
    secretd_daemon,
)
from daemon import rss_kib, throughput  # noqa: E402
from run_docker import VALUE, cli, docker_engine, swarm_service  # noqa: E402
from run_image import bare_runc  # noqa: E402

from tests.support import busybox  # noqa: E402
from tests.support.daemons import IMAGE, import_busybox, podman_env  # noqa: E402

READ = ("cat", "/run/secrets/api_key")
HOST, CONTAINER = "host command, secret mounted", "container reading a secret"


@dataclass(frozen=True)
class Entry:
    """One measured command: its panel, whether it is secretd, the peer it is compared to."""

    name: str
    group: str
    timer: Timer
    secretd: bool = False
    peer: str | None = None


@dataclass(frozen=True)
class Result:
    entry: Entry
    samples: list[float]

    def quantile(self, q: float) -> float:
        return statistics.quantiles(self.samples, n=100, method="inclusive")[int(q * 100) - 1]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


def host_entries(env: Mapping[str, str], daemon: int | None) -> list[Entry]:
    run = [*SECRETD, "run", "--secret", "api_key"]
    peer = "unshare -m true"
    in_process = command([*run, "--no-daemon", "--", "true"], env)
    entries = [Entry("secretd run -- true", HOST, in_process, secretd=True, peer=peer)]
    if daemon:
        through = command([*run, "--", "true"], env, daemon)
        entries.append(Entry("secretd run -- true (daemon)", HOST, through, True, peer))
    # The sandbox's own namespaces without secretd: a PID namespace with tini as PID 1.
    tini = ["unshare", "-m", "-p", "-f", "--mount-proc", "tini", "--", "true"]
    return [
        *entries,
        Entry(peer, HOST, command(["unshare", "-m", "true"])),
        Entry("unshare -mpf tini -- true", HOST, command(tini)),
        Entry("python3 -IS -c pass", HOST, command([sys.executable, "-IS", "-c", "pass"])),
    ]


def container_entries(
    tmp: Path, env: Mapping[str, str], daemon: int | None, swarm: Timer | None
) -> list[Entry]:
    """secretd with runc, docker and podman, each followed by its peers."""
    (tmp / "docker-secret").write_bytes(VALUE)
    bind = f"{tmp / 'docker-secret'}:/run/secrets/api_key:ro"
    podman = ["podman", "run", "--rm", "--secret", "bench_api_key,target=api_key"]
    runs = {
        "runc": (["busybox"], "runc run", command(bare_runc(tmp, dict(env))[0])),
        "docker": (["--runtime", "docker", IMAGE], "docker run",
                   command(["docker", "run", "--rm", "-v", bind, IMAGE, *READ], env)),
        "podman": (["--runtime", "podman", IMAGE], "podman run --secret",
                   command([*podman, IMAGE, *READ], env)),
    }  # fmt: skip
    run = [*SECRETD, "run", "--rm", "--secret", "api_key"]
    entries = []
    for runtime, (image, peer, peer_timer) in runs.items():
        argv = [*run, "--no-daemon", *image, *READ]
        entries.append(Entry(f"secretd run ({runtime})", CONTAINER, command(argv, env), True, peer))
        if daemon and runtime != "podman":  # podman through the daemon: 1 s a round more
            argv = [*run, *image, *READ]
            name = f"secretd run ({runtime}, daemon)"
            entries.append(Entry(name, CONTAINER, command(argv, env), True, peer))
        entries.append(Entry(peer, CONTAINER, peer_timer))
        if runtime == "docker" and swarm is not None:
            entries.append(Entry("swarm service (1 task)", CONTAINER, swarm, peer="docker run"))
    return entries


def setup(tmp: Path, stack: ExitStack) -> tuple[dict[str, str], int | None, Timer | None]:
    """The environment, the pid of the ``secretd daemon`` (if it started), the swarm timer."""
    env = environment(SECRETD_STATE_DIR=f"{tmp}/state", SECRETD_RUNTIME_DIR=f"{tmp}/run")
    env["DOCKER_HOST"] = stack.enter_context(docker_engine(tmp / "dockerd"))
    (tmp / "podman").mkdir()
    env |= podman_env(tmp / "podman")
    cli(env, *SECRETD, "secret", "create", "api_key", "-", stdin=VALUE)
    cli(env, *SECRETD, "image", "load", "-i", str(busybox.docker_archive(tmp / "busybox.tar")))
    for engine in ("docker", "podman"):
        import_busybox(engine, env)
    stack.callback(cli, env, "sh", "-c", "podman rm -af >/dev/null; podman rmi -af >/dev/null")
    cli(env, "podman", "secret", "create", "bench_api_key", "-", stdin=VALUE)
    stack.callback(subprocess.run, ["umount", str(tmp / "bundle" / "rootfs")], check=False)
    swarm = stack.enter_context(swarm_service(env, [IMAGE, *READ]))
    daemon = stack.enter_context(secretd_daemon(env, tmp / "run"))
    return env, daemon, swarm


def daemon_load(sock: str, pid: int) -> list[str]:
    """Lines on `resolve-check` throughput with 1, 8 and 64 clients and the daemon's RSS."""
    lines = ["| concurrent clients | requests/s |", "|---:|---:|"]
    before = rss_kib(pid)["VmRSS"]
    served = 0
    for clients in (1, 8, 64):
        rate, total = throughput(sock, clients, 3.0)
        served += total
        lines.append(f"| {clients} | {rate:,.0f} |")
    after = rss_kib(pid)["VmRSS"]
    return lines + [
        "",
        f"Daemon RSS: {before / 1024:.1f} MiB after the timed runs above, "
        f"{after / 1024:.1f} MiB after {served:,} more requests.",
    ]


def versions() -> str:
    def first_line(argv: Sequence[str]) -> str:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        return (done.stdout or done.stderr).strip().splitlines()[0] if done.returncode == 0 else "?"

    parts = [
        f"{os.cpu_count()} CPUs",
        f"Linux {platform.release()}",
        f"Python {platform.python_version()}",
        first_line(["runc", "--version"]),
        first_line(["dockerd", "--version"]).removesuffix(",").split(", build")[0],
        first_line(["podman", "--version"]),
    ]
    return ", ".join(parts)


def ratio(result: Result, results: list[Result]) -> str:
    """``"6.86x runc run"``: the median against the peer's, or ``""`` for a peer."""
    peers = [r for r in results if r.entry.name == result.entry.peer]
    return f"{result.median / peers[0].median:.2f}x {peers[0].entry.name}" if peers else ""


def chart(results: list[Result], path: Path, title: str) -> None:
    """One horizontal bar panel per group: medians with p25-p75 whiskers, secretd in blue,
    each secretd bar labelled with its ratio to its peer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    groups = [HOST, CONTAINER]
    sizes = [sum(r.entry.group == g for r in results) for g in groups]
    fig, axes = plt.subplots(
        2, 1, figsize=(9, 1.1 + 0.42 * sum(sizes)), gridspec_kw={"height_ratios": sizes}
    )
    for ax, group in zip(axes, groups, strict=True):
        rows = [r for r in results if r.entry.group == group][::-1]
        ms = [r.median * 1000 for r in rows]
        low = [m - r.quantile(0.25) * 1000 for m, r in zip(ms, rows, strict=True)]
        high = [r.quantile(0.75) * 1000 - m for m, r in zip(ms, rows, strict=True)]
        colors = ["#2b6cb0" if r.entry.secretd else "#a0aec0" for r in rows]
        ax.barh([r.entry.name for r in rows], ms, xerr=[low, high], color=colors, capsize=3)
        for y, (r, value, up) in enumerate(zip(rows, ms, high, strict=True)):
            label = f"  {value:.0f} ms" + (f"  ({ratio(r, results)})" if r.entry.peer else "")
            ax.text(value + up, y, label, va="center", fontsize=8)
        ax.set_title(group, fontsize=10, loc="left")
        ax.set_xlim(0, max(m + h for m, h in zip(ms, high, strict=True)) * 1.45)
        ax.tick_params(axis="y", labelsize=8)
    legend = [Patch(color="#2b6cb0", label="secretd"), Patch(color="#a0aec0", label="peers")]
    axes[0].legend(handles=legend, loc="lower right", fontsize=8)
    axes[-1].set_xlabel("wall time per run, median (whiskers: 25th-75th percentile), ms")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# The targets for a sandbox run, in ms over `unshare -m true`.
TARGETS = {"secretd run -- true (daemon)": 15, "secretd run -- true": 60}


def overheads(results: list[Result], warmup: int = 2) -> list[str]:
    """One line per host run with a target: its median over `unshare -m true`'s, and its
    mean CPU time (its processes' and the daemon's) over `unshare`'s, which a loaded
    machine changes far less."""
    medians = {r.entry.name: r.median for r in results}
    cpu = {
        r.entry.name: statistics.mean(r.entry.timer.cpu[warmup:])
        for r in results
        if isinstance(r.entry.timer, Command)
    }
    base, base_cpu = medians["unshare -m true"], cpu["unshare -m true"]
    return [
        f"- `{name}`: {(medians[name] - base) * 1000:+.1f} ms over `unshare -m true` "
        f"(target: within {target} ms); CPU {cpu[name] * 1000:.1f} ms a run, "
        f"{(cpu[name] - base_cpu) * 1000:+.1f} ms over `unshare`'s"
        for name, target in TARGETS.items()
        if name in medians
    ]


def markdown(
    results: list[Result], rounds: int, when: str, loadavg: tuple[str, str], load: list[str]
) -> str:
    lines = [
        "# Benchmark report",
        "",
        f"Written by `make bench` (`bench/report.py`) on {when}: {versions()}.",
        f"Each command ran {rounds} times after 2 warm-up rounds, all commands in turn",
        "(interleaved), so every peer saw the same machine load. The machine is shared",
        f"(load average {loadavg[0]} before, {loadavg[1]} after): compare the ratios, not",
        "the milliseconds, between reports.",
        "",
        "![secretd against its peers](report.png)",
        "",
        "| run | median | p25-p75 | compared with | ratio |",
        "|---|---:|---:|---|---:|",
    ]
    for r in results:
        times = ratio(r, results).split(" ", 1)[0]
        lines.append(
            f"| {r.entry.name} | {r.median * 1000:.1f} ms | {r.quantile(0.25) * 1000:.0f}-"
            f"{r.quantile(0.75) * 1000:.0f} ms | {r.entry.peer or ''} | {times} |"
        )
    lines += ["", *overheads(results)]
    lines += [
        "",
        "What each run does: `secretd run --secret api_key -- true` mounts the secret in a",
        "sandbox (mount and PID namespaces, tini as PID 1, a tmpfs) and runs `true`;",
        "`unshare -m true` is the bare mount namespace, `unshare -mpf --mount-proc tini --",
        "true` the sandbox's namespaces and init without secretd. The container runs read",
        "`/run/secrets/api_key` from a busybox image:",
        "secretd's own `runc` bundle against bare `runc run` of an equivalent bundle",
        "(overlay of the same layer, the secret bound read-only); `docker run` binds a host",
        "file (plain Docker has no secrets); `podman run --secret` uses podman's secret store;",
        "the Swarm service is a `replicated-job` with a Docker secret, timed from",
        "`docker service create` until the task has run. `(daemon)` rows go through",
        "`secretd daemon`, started as users start it: the `secretd` script that",
        "`tools/setup-host.sh` writes (`python -IS`, the thin client `secretd/thin.py`, which",
        "forwards the command line); the others run secretd in-process (`--no-daemon`; a",
        "plain `run` command line is read without click, by `secretd/cli/quickrun.py`).",
        "`python3 -IS -c pass` is the interpreter's own start, the floor of both. The CPU",
        "figures above are the mean CPU time of a run's processes (through the daemon, plus",
        "the daemon's own): on a busy shared machine they move far less than wall time.",
        "",
        "## secretd daemon under load",
        "",
        "`resolve-check` requests, one per connection, for 3 s each; N clients are N",
        "connections in flight, kept going by one process per CPU (`epoll`) with the request",
        "encoded once and each reply compared with the first, checked one (bench/daemon.py):",
        "",
        *load,
        "",
    ]
    return "\n".join(lines)


def measure(rounds: int) -> tuple[list[Result], list[str]]:
    with TemporaryDirectory(prefix="secretd-bench-") as name, ExitStack() as stack:
        tmp = Path(name)
        env, daemon, swarm = setup(tmp, stack)
        entries = host_entries(env, daemon) + container_entries(tmp, env, daemon, swarm)
        check = [*SECRETD, "run", "--rm", "--no-daemon", "--no-redact", "--secret", "api_key"]
        check += ["busybox", *READ]
        if cli(env, *check).strip() != VALUE.decode():
            raise SystemExit("secretd run does not print the secret; fix that first")
        samples = interleaved_samples({e.name: e.timer for e in entries}, rounds)
        results = [Result(e, samples[e.name]) for e in entries]
        sock = str(tmp / "run" / "secretd.sock")
        load = daemon_load(sock, daemon) if daemon else ["(secretd daemon did not start)"]
    return results, load


def section(title: str, script: str, note: str) -> str:
    """A report section: what ``bench/<script>`` printed, from a process of its own
    (fuse.py shares fusepy's name; single_flight.py starts servers of its own), then
    ``note``."""
    argv = [sys.executable, str(BENCH / script)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        body = [f"(bench/{script} failed: {(result.stderr or result.stdout).strip()[-300:]})"]
    else:
        body = result.stdout.splitlines()
    return "\n".join([f"## {title}", "", *body, "", note, ""])


def main() -> None:
    if os.geteuid() != 0 or shutil.which("runc") is None:
        raise SystemExit("report.py needs root and runc (and docker, podman for their rows)")
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 25
    # Installed packages carry compiled bytecode; measure secretd the same way. The daemon
    # passes the client's cwd on as the command's; from / that is right for images too.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "secretd")], check=True)
    os.chdir("/")
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    before = Path("/proc/loadavg").read_text().split()[0]
    results, load = measure(rounds)
    loadavg = (before, Path("/proc/loadavg").read_text().split()[0])
    title = f"secretd and its peers, {rounds} interleaved rounds, {when}"
    chart(results, BENCH / "report.png", title)
    report = markdown(results, rounds, when, loadavg, load)
    fuse = section("FUSE mount", "fuse.py", "See docs/fuse.md; each open is in the access log.")
    reads = section(
        "Upstream reads for concurrent runs",
        "single_flight.py",
        "Each run is `secretd run --secret kv -- cat /run/secrets/kv` through one `secretd"
        "\ndaemon`, all started at once; the reads are counted in OpenBao's file audit log."
        "\nReads that overlap in time are one upstream read (single-flight, secretd/broker.py);"
        "\non loopback a read is over in milliseconds, before most runs have asked, so later"
        "\nruns read again. On two cores the 200 clients reach the daemon over about a second:"
        "\nbehind the relay a run may still come after the first read and make a second."
        "\nWith `cache_ttl` (off by default, so a rotation is seen at once) later runs take"
        "\nthe value the first read cached.",
    )
    (BENCH / "REPORT.md").write_text(report + fuse + "\n" + reads)
    width = max(len(r.entry.name) for r in results)
    for r in results:
        print(f"  {r.entry.name:<{width}}  median {r.median * 1000:8.1f} ms")
    print("\n".join(overheads(results)))
    print(f"wrote {BENCH / 'REPORT.md'} and {BENCH / 'report.png'}")


if __name__ == "__main__":
    main()
