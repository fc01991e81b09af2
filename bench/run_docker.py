"""`secretd run --runtime docker --rm --secret api_key` against bare `docker run --rm` of the
same image and command and a one-task Swarm service with the same secret; then
`secretd run --runtime podman` against `podman run --secret`.

Usage: python bench/run_docker.py [ROUNDS]     (as root; about a minute with 15 rounds)

Uses the dockerd answering at DOCKER_HOST (or /var/run/docker.sock), else starts a private
one for the run, as the tests do. Swarm is initialised for the Swarm peer only if the
engine is not in a swarm already, and left afterwards. secretd is measured in-process
(``--no-daemon``) and, when ``secretd daemon`` starts, through the daemon. Runs are
interleaved; medians and ratios are printed. The issue's target: within 1.15x of bare
`docker run`.
"""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from tempfile import TemporaryDirectory

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "bench"), str(ROOT)]
from _timing import (  # noqa: E402
    SECRETD,
    Timer,
    command,
    environment,
    interleaved_samples,
    report,
    secretd_daemon,
)  # fmt: skip

from secretd.runtime.engines.endpoint import socket_answers  # noqa: E402
from tests.support.daemons import IMAGE, import_busybox, podman_env, start_dockerd, stop  # noqa: E402
from tests.support.waiting import free_port  # noqa: E402

VALUE = b"bench-secret-value"


def interleaved(timers: Mapping[str, Timer], rounds: int, warmup: int = 2) -> dict[str, float]:
    """Median seconds of each timer, taken in turn (A B C A B C ...)."""
    samples = interleaved_samples(timers, rounds, warmup)
    return {name: statistics.median(values) for name, values in samples.items()}


def cli(env: Mapping[str, str], *args: str, stdin: bytes | None = None) -> str:
    done = subprocess.run(args, env=env, input=stdin, capture_output=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args[:3])} failed: {done.stderr.decode()[-300:]}")
    return done.stdout.decode()


@contextmanager
def docker_engine(root: Path) -> Iterator[str]:
    """The DOCKER_HOST to use: the one that answers, else a private dockerd."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if host.startswith("unix://") and socket_answers(host.removeprefix("unix://")):
        yield host
        return
    root.mkdir()
    proc, host = start_dockerd(root)
    try:
        yield host
    finally:
        cli({**os.environ, "DOCKER_HOST": host}, "sh", "-c", "docker rm -f $(docker ps -aq) || :")
        stop(proc)
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def swarm_service(env: Mapping[str, str], container: Sequence[str]) -> Iterator[Timer | None]:
    """A timer for a one-task Swarm job running ``container`` (image and command) with the
    secret at /run/secrets/api_key, create to completion; ``None`` if swarm cannot be
    initialised. A swarm it initialises listens on free loopback ports (another engine on
    this machine may hold 2377) and is left afterwards; one that was there stays."""
    state = cli(env, "docker", "info", "--format", "{{.Swarm.LocalNodeState}}").strip()
    joined = state == "inactive"
    if joined:
        init = subprocess.run(
            ["docker", "swarm", "init", "--advertise-addr", "127.0.0.1",
             "--listen-addr", f"127.0.0.1:{free_port()}",
             "--data-path-port", str(free_port(socket.SOCK_DGRAM, below=49152))],
            env=env, capture_output=True, check=False,
        )  # fmt: skip
        if init.returncode != 0:
            print(f"swarm peer skipped: {init.stderr.decode().strip()}")
            yield None
            return
    cli(env, "docker", "secret", "create", "bench_api_key", "-", stdin=VALUE)
    create = ["docker", "service", "create", "--quiet", "--mode", "replicated-job",
              "--secret", "source=bench_api_key,target=api_key", *container]  # fmt: skip

    def timer() -> float:
        start = time.perf_counter()
        service = cli(env, *create).strip()  # returns when the job has completed
        elapsed = time.perf_counter() - start
        cli(env, "docker", "service", "rm", service)
        return elapsed

    try:
        yield timer
    finally:
        subprocess.run(["docker", "secret", "rm", "bench_api_key"], env=env, capture_output=True)
        if joined:
            cli(env, "docker", "swarm", "leave", "--force")
            subprocess.run(["docker", "network", "rm", "docker_gwbridge"], env=env,
                           capture_output=True)  # fmt: skip


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    # The daemon passes the client's cwd on as the command's working directory; from /
    # that is also right for a container (whose default would be the image's, here /).
    os.chdir("/")
    with TemporaryDirectory(prefix="secretd-bench-") as tmp, ExitStack() as stack:
        root = Path(tmp)
        env = environment(
            SECRETD_STATE_DIR=f"{tmp}/state",
            SECRETD_RUNTIME_DIR=f"{tmp}/run",
            DOCKER_HOST=stack.enter_context(docker_engine(root / "dockerd")),
        )
        (root / "podman").mkdir()
        env.update(podman_env(root / "podman"))
        import_busybox("docker", env)
        secretd = SECRETD
        cli(env, *secretd, "secret", "create", "api_key", "-", stdin=VALUE)
        run = [*secretd, "run", "--rm", "--secret", "api_key"]
        daemon = stack.enter_context(secretd_daemon(env, root / "run"))

        docker = {
            "secretd run --runtime docker": command(
                [*run, "--no-daemon", "--runtime", "docker", IMAGE, "true"], env
            ),
            "docker run --rm": command(["docker", "run", "--rm", IMAGE, "true"], env),
        }
        if daemon:
            docker["  ... through secretd daemon"] = command(
                [*run, "--runtime", "docker", IMAGE, "true"], env
            )
        swarm = stack.enter_context(swarm_service(env, [IMAGE, "true"]))
        if swarm is not None:
            docker["swarm service (1 task)"] = swarm
        medians = interleaved(docker, rounds)
        report(f"docker, {rounds} rounds (medians):", medians, "docker run --rm")
        print("  target: secretd run within 1.15x of docker run --rm")

        if shutil.which("podman") is None:
            print("podman is not installed: podman peers skipped")
            return
        stack.callback(cli, env, "sh", "-c", "podman rm -af >/dev/null; podman rmi -af >/dev/null")
        import_busybox("podman", env)
        cli(env, "podman", "secret", "create", "bench_api_key", "-", stdin=VALUE)
        podman = {
            "secretd run --runtime podman": command(
                [*run, "--no-daemon", "--runtime", "podman", IMAGE, "true"], env
            ),
            "podman run --secret": command(
                ["podman", "run", "--rm", "--secret", "bench_api_key,target=api_key", IMAGE,
                 "true"], env,
            ),  # fmt: skip
            "podman run --rm": command(["podman", "run", "--rm", IMAGE, "true"], env),
        }
        if daemon:
            podman["  ... through secretd daemon"] = command(
                [*run, "--runtime", "podman", IMAGE, "true"], env
            )
        medians = interleaved(podman, rounds)
        report(f"podman, {rounds} rounds (medians):", medians, "podman run --secret")


if __name__ == "__main__":
    main()
