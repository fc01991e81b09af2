"""`secretd run --rm --secret api_key IMAGE cat /run/secrets/api_key` against bare
`runc run` of an equivalent bundle and, where they work here, `podman run --secret` and
`docker run` (a read-only bind of the secret file; plain `docker run` has no --secret).

Usage (as root): python bench/run_image.py [ROUNDS]
Prints medians and ratios; the issue's targets are at most 1.5x bare runc and at most half
of `podman run --secret`. `python -c pass` and `secretd --version` show the floor that
Python start-up and the CLI set before any container work.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(Path(__file__).parent)]
from _timing import SECRETD, environment, interleaved, report  # noqa: E402

from secretd.runtime.oci import bundle  # noqa: E402
from secretd.runtime.oci.images import ImageConfig, ImageStore  # noqa: E402
from secretd.spec import RunSpec  # noqa: E402
from tests.support import busybox  # noqa: E402

VALUE = b"bench-value"
CONTAINERS_CONF = """[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1000:1000"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
"""
Command = tuple[Sequence[str], Mapping[str, str] | None]


def works(argv: Sequence[str], env: Mapping[str, str] | None = None) -> bool:
    result = subprocess.run(argv, env=env, capture_output=True, timeout=120)
    return result.returncode == 0 and result.stdout.strip() == VALUE


def bare_runc(tmp: Path, env: dict[str, str]) -> Command:
    """A bundle like secretd's: the same config.json (Docker's defaults), an overlay of the
    same cached layer, the secret in a directory bound read-only at /run/secrets."""
    layer = ImageStore(Path(env["SECRETD_STATE_DIR"])).resolve("busybox").layers[0]
    root = tmp / "bundle"
    for name in ("rootfs", "upper", "work", "secrets", "etc"):
        (root / name).mkdir(parents=True)
    (root / "secrets" / "api_key").write_bytes(VALUE)
    subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o",
         f"lowerdir={layer},upperdir={root / 'upper'},workdir={root / 'work'}",
         str(root / "rootfs")],
        check=True,
    )
    spec = RunSpec(command=("cat", "/run/secrets/api_key"), image="busybox")
    image = ImageConfig(env=(busybox.PATH_ENV,), cmd=("sh",))
    process = bundle.process_config(spec, image, str(root / "rootfs"), "bench", [])
    mounts = bundle.user_mounts(spec, root / "secrets", [], root / "etc", "bench")
    config = bundle.config(spec, process, "bench", mounts, "/secretd/bench")
    (root / "config.json").write_text(json.dumps(config))
    return (["runc", "--root", str(tmp / "runc"), "run", "--bundle", str(root), "bench"], None)


def podman(tmp: Path, archive: Path) -> Command | None:
    if shutil.which("podman") is None:
        return None
    (tmp / "containers.conf").write_text(CONTAINERS_CONF)
    env = dict(os.environ, CONTAINERS_CONF=str(tmp / "containers.conf"))
    base = ["podman", "--root", str(tmp / "podman"), "--runroot", str(tmp / "podman-run")]
    (tmp / "podman-secret").write_bytes(VALUE)
    for argv in (
        [*base, "load", "-i", str(archive)],
        [*base, "secret", "create", "api_key", str(tmp / "podman-secret")],
    ):
        if subprocess.run(argv, env=env, capture_output=True).returncode != 0:
            return None
    argv = [*base, "run", "--rm", "--network", "none", "--secret", "api_key",
            "busybox", "cat", "/run/secrets/api_key"]
    return (argv, env) if works(argv, env) else None


def docker(tmp: Path, archive: Path) -> Command | None:
    if shutil.which("docker") is None:
        return None
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        return None  # no daemon running: skipped
    if subprocess.run(["docker", "load", "-i", str(archive)], capture_output=True).returncode:
        return None
    (tmp / "docker-secret").write_bytes(VALUE)
    argv = ["docker", "run", "--rm", "--network", "none",
            "-v", f"{tmp / 'docker-secret'}:/run/secrets/api_key:ro",
            "busybox", "cat", "/run/secrets/api_key"]
    return (argv, None) if works(argv) else None


def main() -> None:
    if os.geteuid() != 0 or shutil.which("runc") is None:
        raise SystemExit("run_image.py needs root and runc")
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    # Installed packages carry compiled bytecode; measure secretd the same way.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "secretd")], check=True)
    with tempfile.TemporaryDirectory(prefix="secretd-bench-") as name:
        tmp = Path(name)
        env = environment(SECRETD_STATE_DIR=f"{tmp}/state", SECRETD_RUNTIME_DIR=f"{tmp}/run")
        secretd = SECRETD
        archive = busybox.docker_archive(tmp / "busybox.tar")
        subprocess.run([*secretd, "image", "load", "-i", str(archive)], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        subprocess.run([*secretd, "secret", "create", "api_key", "-"], input=VALUE, env=env,
                       check=True, stdout=subprocess.DEVNULL)
        run = [*secretd, "run", "--rm", "--secret", "api_key", "busybox",
               "cat", "/run/secrets/api_key"]
        if not works([*run[:3], "--no-redact", *run[3:]], env):  # a pipe gets masked output
            raise SystemExit("secretd run does not print the secret; fix that first")
        commands: dict[str, Command] = {"secretd run": (run, env)}
        commands["runc run"] = bare_runc(tmp, env)
        peers = {"podman run --secret": podman(tmp, archive), "docker run": docker(tmp, archive)}
        for peer, command in peers.items():
            if command is None:
                print(f"  ({peer}: skipped, not installed or not working here)")
            else:
                commands[peer] = command
        commands["python -c pass"] = ([sys.executable, "-c", "pass"], None)
        commands["secretd --version"] = ([*secretd, "--version"], env)
        try:
            medians = interleaved(commands, rounds)
        finally:
            subprocess.run(["umount", str(tmp / "bundle" / "rootfs")], check=False)
    report(f"image run, {rounds} rounds (medians):", medians, "runc run")
    ratio = medians["secretd run"] / medians["runc run"]
    print(f"  secretd run / runc run = {ratio:.2f} (target <= 1.5)")
    if "podman run --secret" in medians:
        share = medians["secretd run"] / medians["podman run --secret"]
        print(f"  secretd run / podman run --secret = {share:.2f} (target <= 0.5)")
    floor = medians["secretd --version"] * 1000
    print(f"  Python + CLI start-up alone (secretd --version): {floor:.1f} ms")


if __name__ == "__main__":
    main()
