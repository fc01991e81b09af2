"""The ``config.json`` of an OCI bundle: Docker's defaults, the image config, the RunSpec.

What ``docker run`` would do is the rule: the same default capabilities, masked and
read-only paths and system mounts; Entrypoint, Cmd, Env, WorkingDir and User merged with
the flags the way Docker merges them; user and group names looked up in the image's own
``/etc/passwd`` and ``/etc/group``. Paths inside the image are resolved with every
symlink kept inside the image's root, so a hostile image cannot make secretd read a host
file while it looks up a user or a command; the files it reads must be regular files of
a bounded size (a FIFO at ``/etc/passwd`` must not hang a run).
"""

from __future__ import annotations

import errno
import os
import posixpath
import resource
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import CommandNotFound, CommandNotRunnable, UsageError
from ...spec import RunSpec
from .base import ImageError
from .images import ImageConfig, workdir_problem

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
MAX_LINKS = 40
MAX_ID = 2**32 - 2  # (uid_t)-1 means "unchanged"
MAX_ACCOUNTS_FILE = 4 << 20  # bytes of the image's /etc/passwd or /etc/group
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


def in_root(root: str, path: str) -> str:
    """The host path of ``path`` inside ``root``, every symlink resolved inside ``root``
    (``..`` stops at the root, absolute links restart from it), as the container sees it.

    Raises:
        OSError: ELOOP after too many links.
    """
    pending = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    links = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        try:
            target = os.readlink(os.path.join(root, *resolved, part))
        except OSError:  # not a link, or not there: taken literally
            resolved.append(part)
            continue
        links += 1
        if links > MAX_LINKS:
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
        if target.startswith("/"):
            resolved = []
        pending = [p for p in target.split("/") if p not in ("", ".")] + pending
    return os.path.join(root, *resolved)


def _entries(root: str, path: str) -> list[list[str]]:
    """The colon-separated lines of the image's ``path`` ([] when it has none).

    Raises:
        ImageError: it is not a regular file (a FIFO, a device) or is too large.
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(in_root(root, path), flags)
    except OSError:
        return []
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ImageError(f"the image's {path} is not a regular file",
                             "the image is damaged or hostile")
        data = fh.read(MAX_ACCOUNTS_FILE + 1)
    if len(data) > MAX_ACCOUNTS_FILE:
        raise ImageError(f"the image's {path} is larger than {MAX_ACCOUNTS_FILE} bytes",
                         "the image is damaged or hostile")
    text = data.decode("utf-8", errors="replace")
    return [line.split(":") for line in text.split("\n") if not line.startswith("#")]


@dataclass(frozen=True)
class User:
    uid: int
    gid: int
    groups: tuple[int, ...] = ()
    home: str = "/"


def lookup_user(root: str, text: str) -> User:
    """``--user``/the image's User, as Docker resolves it against the image's files:
    names must exist there; a numeric uid without an entry runs with gid 0. Lines whose
    ids are not numbers are skipped, as the C library skips them.

    Raises:
        UsageError: a user or group name the image does not know, an id out of range.
    """
    if not text:
        text = "0"
    user_text, _, group_text = text.partition(":")
    passwd = [e for e in _entries(root, "/etc/passwd")
              if len(e) >= 7 and _is_id(e[2]) and _is_id(e[3])]
    uid_given = _number(user_text, "uid")
    match = [e for e in passwd if (e[2] if uid_given is not None else e[0]) == user_text]
    if not match and uid_given is None:
        raise UsageError(f"unable to find user {user_text}: no matching entries in passwd file",
                         "give a numeric uid or a user the image defines")
    name, uid, gid, home = (
        (match[0][0], int(match[0][2]), int(match[0][3]), match[0][5] or "/")
        if match else ("", uid_given or 0, 0, "/")
    )
    groups = [e for e in _entries(root, "/etc/group") if len(e) >= 4 and _is_id(e[2])]
    if group_text:
        gid_given = _number(group_text, "gid")
        found = [e for e in groups if (e[2] if gid_given is not None else e[0]) == group_text]
        if not found and gid_given is None:
            raise UsageError(f"unable to find group {group_text}: no matching entries in group "
                             "file", "give a numeric gid or a group the image defines")
        gid = int(found[0][2]) if found else gid_given or 0
    member = [e for e in groups if name and name in e[3].split(",") and int(e[2]) != gid]
    extra = tuple(int(e[2]) for e in member)
    return User(uid, gid, extra, home)


def _is_id(text: str) -> bool:
    return text.isascii() and text.isdigit() and int(text) <= MAX_ID


def _number(text: str, what: str) -> int | None:
    """``text`` as an id when it is a number (ASCII digits), None when it is a name.

    Raises:
        UsageError: a number too large to be an id.
    """
    if not (text.isascii() and text.isdigit()):
        return None
    if int(text) > MAX_ID:
        raise UsageError(f"{what} {text[:20]} is out of range", f"ids go up to {MAX_ID}")
    return int(text)


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
