"""The ``config.json`` of an OCI bundle: Docker's defaults, the image config, the RunSpec.

What ``docker run`` would do is the rule: the same default capabilities, masked and
read-only paths and system mounts; Entrypoint, Cmd, Env, WorkingDir and User merged with
the flags the way Docker merges them; user and group names looked up in the image's own
``/etc/passwd`` and ``/etc/group``, and the command in its root, by rootfs.py.
"""

from __future__ import annotations

import os
import posixpath
import resource
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...errors import CommandNotFound, CommandNotRunnable, UsageError
from ...spec import RunSpec
from .images import ImageConfig, workdir_problem
from .rootfs import User, in_root, lookup_user

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CAPABILITIES = [
    f"CAP_{name}"
    for name in (
        "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
        "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
    )
]
MASKED_PATHS = [
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
    "/sys/firmware", "/sys/devices/virtual/powercap",
]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
NOFILE_MAX = 1 << 20
SECRET_OPTIONS = ["bind", "ro", "nosuid", "nodev", "noexec", "rprivate"]
CONFIG_OPTIONS = [option for option in SECRET_OPTIONS if option != "noexec"]  # may be scripts
HOST_NETWORK_FILES = ("/etc/resolv.conf", "/etc/hosts")


def system_mounts(host_network: bool) -> list[dict[str, Any]]:
    """Docker's ``/proc``, ``/dev``, ``/dev/pts``, ``/dev/shm``, ``/dev/mqueue``, ``/sys``.

    Without a network namespace of its own the container may not mount sysfs, so it gets
    the host's ``/sys`` read-only, as Docker does for ``--network host``.
    """
    sysfs = (
        {"source": "/sys", "type": "bind", "options": ["rbind", "ro", "nosuid", "noexec", "nodev"]}
        if host_network
        else {"source": "sysfs", "type": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}
    )
    return [
        {"destination": "/proc", "type": "proc", "source": "proc",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", **sysfs},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
    ]


def command(spec: RunSpec, image: ImageConfig) -> list[str]:
    """Entrypoint + Cmd as Docker merges them: CMD args replace the image's Cmd, and
    ``--entrypoint`` replaces the image's Entrypoint and drops its Cmd."""
    if spec.entrypoint is not None:
        argv = ([spec.entrypoint] if spec.entrypoint else []) + list(spec.command)
    else:
        argv = list(image.entrypoint) + list(spec.command or image.cmd)
    if not argv:
        raise UsageError("the image has no Entrypoint or Cmd and no command was given",
                         "give CMD after IMAGE")
    return argv


def environment(spec: RunSpec, image: ImageConfig, user: User, hostname: str) -> list[str]:
    """The image's Env overridden by ``-e``, plus Docker's HOSTNAME, TERM, PATH and HOME."""
    merged: dict[str, str] = {}
    for item in image.env:
        key, _, value = item.partition("=")
        merged[key] = value
    merged.update(spec.env)
    base = {"HOSTNAME": hostname, **({"TERM": "xterm"} if spec.tty else {})}
    merged = {**base, **merged}
    merged.setdefault("PATH", DEFAULT_PATH)
    merged.setdefault("HOME", user.home)
    return [f"{key}={value}" for key, value in merged.items()]


def workdir(spec: RunSpec, image: ImageConfig) -> str:
    if spec.workdir and not spec.workdir.startswith("/"):
        raise UsageError(f"-w {spec.workdir!r} is not an absolute path", "give /PATH")
    problem = workdir_problem(spec.workdir or "")
    if problem:
        raise UsageError(f"-w {problem}", "give a shorter path")
    return posixpath.normpath(posixpath.join("/", spec.workdir or image.workdir or "/"))


def check_command(root: str, argv0: str, env: Sequence[str], cwd: str,
                  shadowed: Sequence[str]) -> None:
    """Fail before starting anything when the command cannot be found or run, with the
    same words and exit codes as a host command. Paths under a volume are left to runc.

    Raises:
        CommandNotFound: nothing of that name (127).
        CommandNotRunnable: found, but a directory or not executable (126).
    """
    if "/" in argv0:
        candidates = [posixpath.join(cwd, argv0)]
    else:
        path = next((e[5:] for e in reversed(env) if e.startswith("PATH=")), DEFAULT_PATH)
        candidates = [posixpath.join(cwd, d or ".", argv0) for d in path.split(":")]
    if any(c == v or c.startswith(v.rstrip("/") + "/") for c in candidates for v in shadowed):
        return
    for candidate in candidates:
        try:
            mode = os.stat(in_root(root, candidate)).st_mode
        except OSError:
            continue
        if stat.S_ISREG(mode) and mode & 0o111:
            return
        if "/" in argv0:
            raise CommandNotRunnable(f"cannot run {argv0!r}: Permission denied")
    raise CommandNotFound(f"cannot run {argv0!r}: command not found", "check PATH or the name")


def volume(text: str) -> dict[str, Any]:
    """``-v HOST:CONTAINER[:ro|rw]`` as a bind mount (no named volumes without an engine).

    Raises:
        UsageError: a relative or missing host path, a relative target, an unknown option.
    """
    host, _, rest = text.partition(":")
    target, _, options = rest.partition(":")
    if not host.startswith("/"):
        raise UsageError(f"-v {text}: named volumes need an engine",
                         "give an absolute host path, or use --runtime docker")
    if not target.startswith("/") or ".." in target.split("/"):
        raise UsageError(f"-v {text}: the container path must be absolute", "use -v HOST:/PATH")
    flags = [o for o in options.split(",") if o]
    if any(o not in ("ro", "rw") for o in flags):
        raise UsageError(f"-v {text}: unknown option", "use :ro or :rw")
    if not os.path.exists(host):
        raise UsageError(f"-v {text}: {host} does not exist", "create it first")
    return {"destination": posixpath.normpath(target), "type": "bind", "source": host,
            "options": ["rbind", "rprivate"] + (["ro"] if "ro" in flags else [])}


def user_mounts(
    spec: RunSpec,
    secrets: Path,
    binds: Sequence[tuple[Path, str]],
    etc: Path,
    hostname: str,
    configs: Path | None = None,
) -> list[dict[str, Any]]:
    """Volumes, secrets and the container's own ``/etc`` files, parents before children
    (as Docker sorts them). ``etc`` is a directory of the container's for those files;
    binds from below ``configs`` (the configs tmpfs) allow exec."""
    mounts = [volume(v) for v in spec.volumes]
    mounts.append({"destination": spec.secrets_dir, "type": "bind", "source": str(secrets),
                   "options": SECRET_OPTIONS})
    mounts += [{"destination": target, "type": "bind", "source": str(host),
                "options": CONFIG_OPTIONS if configs and host.is_relative_to(configs)
                else SECRET_OPTIONS} for host, target in binds]
    taken = {m["destination"] for m in mounts}
    if spec.network == "host":
        mounts += host_network_files(taken)
    else:
        mounts += own_network_files(taken, etc, hostname)
    seen = [m["destination"] for m in mounts]
    twice = sorted({d for d in seen if seen.count(d) > 1})
    if twice:
        raise UsageError(f"duplicate mount point {twice[0]}", "give each mount its own path")
    return sorted(mounts, key=lambda m: m["destination"].rstrip("/").count("/"))


def host_network_files(taken: set[str]) -> list[dict[str, Any]]:
    """With the host's network, its name resolution too: ``/etc/resolv.conf`` and
    ``/etc/hosts`` bound read-only, as Docker does for ``--network host`` (unless a
    volume already provides them)."""
    return [
        {"destination": path, "type": "bind", "source": os.path.realpath(path),
         "options": ["bind", "ro", "nosuid", "nodev", "noexec", "rprivate"]}
        for path in HOST_NETWORK_FILES
        if path not in taken and os.path.isfile(path)
    ]


def own_network_files(taken: set[str], etc: Path, hostname: str) -> list[dict[str, Any]]:
    """With a network namespace of its own (only ``lo``), the ``/etc/hosts`` and
    ``/etc/hostname`` Docker writes for such a container, so ``localhost`` and the
    container's own name resolve whatever the image ships."""
    files = {
        "/etc/hosts": f"127.0.0.1\tlocalhost {hostname}\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\n",
        "/etc/hostname": f"{hostname}\n",
    }
    mounts = []
    for destination, text in files.items():
        if destination in taken:
            continue
        source = etc / posixpath.basename(destination)
        source.write_text(text)
        mounts.append({"destination": destination, "type": "bind", "source": str(source),
                       "options": ["rbind", "rprivate"]})
    return mounts


def rlimits() -> list[dict[str, Any]]:
    """Open files: as many as the host lets secretd have (Docker's containers inherit the
    daemon's, usually 1048576); never more than the hard limit, which only root can raise."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = NOFILE_MAX if hard == resource.RLIM_INFINITY else min(hard, NOFILE_MAX)
    return [{"type": "RLIMIT_NOFILE", "hard": limit, "soft": limit}]


def config(spec: RunSpec, process: dict[str, Any], hostname: str,
           mounts: list[dict[str, Any]], cgroup: str) -> dict[str, Any]:
    """The whole ``config.json``; ``process`` comes from ``process_config``."""
    host_network = spec.network == "host"
    namespaces = ["pid", "ipc", "uts", "mount"] + ([] if host_network else ["network"])
    return {
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": "rootfs", "readonly": spec.read_only},
        "hostname": hostname,
        "mounts": system_mounts(host_network) + mounts,
        "annotations": dict(spec.labels),
        "linux": {
            "namespaces": [{"type": kind} for kind in namespaces],
            "maskedPaths": MASKED_PATHS,
            "readonlyPaths": READONLY_PATHS,
            "cgroupsPath": cgroup,
        },
    }


def process_config(spec: RunSpec, image: ImageConfig, root: str, hostname: str,
                   shadowed: Sequence[str]) -> dict[str, Any]:
    """The ``process`` object: argv, env, cwd, user, capabilities, rlimits, terminal.

    Raises:
        UsageError: bad ``-u``/``-w`` or no command; CommandNotFound/CommandNotRunnable.
    """
    user = lookup_user(root, spec.user or image.user)
    argv = command(spec, image)
    env = environment(spec, image, user, hostname)
    cwd = workdir(spec, image)
    check_command(root, argv[0], env, cwd, shadowed)
    capabilities: dict[str, list[str]] = {"bounding": CAPABILITIES}
    if user.uid == 0:  # as execve(2) would: a non-root process starts without capabilities
        capabilities |= {"effective": CAPABILITIES, "permitted": CAPABILITIES}
    process: dict[str, Any] = {
        "terminal": spec.tty,
        "user": {"uid": user.uid, "gid": user.gid, "additionalGids": list(user.groups)},
        "args": argv,
        "env": env,
        "cwd": cwd,
        "capabilities": capabilities,
        "rlimits": rlimits(),
        "noNewPrivileges": True,
    }
    if spec.tty:
        try:
            size = os.get_terminal_size(1)
            process["consoleSize"] = {"height": size.lines, "width": size.columns}
        except OSError:
            pass
    return process
