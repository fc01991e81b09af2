"""What the oci runtime keeps on disk per container, and how it is all taken down again.

Each container has a directory ``<state_dir>/containers/<id>`` holding the bundle
(``config.json``, ``rootfs/`` where the overlay is mounted), the overlay's ``upper/`` and
``work/`` directories, ``meta.json`` (the record below) and, when detached, its logs.
The record names the secrets a container holds (names only, never sources or values),
its secrets tmpfs, and the process that owns it: secretd itself for a foreground run, the
monitor for a detached one. A record whose owner is gone while it still says "running"
was left by an interrupted secretd; ``remove_dead_containers`` takes such leftovers down.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...config import Config
from ...errors import LaunchError, SecretdError, UsageError
from ...mount.atomic import DIR_FLAGS, remove_path
from ...mount.tmpfs import HostMount, Layout, unmount
from ...typed import decode
from ..process import alive, pidfd_ended

if TYPE_CHECKING:
    import subprocess

log = logging.getLogger(__name__)

NAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}")
NAMES = ".names"
STOP_TIMEOUT = 10.0


@dataclass
class Record:
    """``meta.json``: what ``secretd container ls`` shows and what cleanup needs."""

    id: str
    image: str
    command: list[str]
    secrets: list[str]
    runc: str
    runc_root: str
    layers: list[str] = field(default_factory=list)
    name: str = ""
    created: float = field(default_factory=time.time)
    detached: bool = False
    remove: bool = False
    mount: str = ""
    owner: int = 0
    owner_start: int = 0
    status: str = "created"
    exit_code: int | None = None
    finished: float | None = None

    def state(self) -> str:
        """``running``, ``exited``, ``created`` or ``dead`` (its owner is gone)."""
        if self.status == "exited":
            return "exited"
        return self.status if alive(self.owner, self.owner_start) else "dead"


def containers_dir(config: Config) -> Path:
    return config.state_dir / "containers"


def save(directory: Path, record: Record) -> None:
    tmp = directory / "meta.json.tmp"
    tmp.write_text(json.dumps(asdict(record)))
    os.replace(tmp, directory / "meta.json")


def load(directory: Path) -> Record:
    """A container's record, each field of the type it must have.

    Raises:
        OSError, ValueError: it cannot be read, or is not JSON.
        UsageError: a field is missing, unknown or of another type (a damaged record).
    """
    return decode(Record, json.loads((directory / "meta.json").read_text()), "container record")


def disposition(pid: int, signum: int) -> str:
    """What process ``pid`` does with ``signum``: ``caught``, ``ignored``, ``default``, or
    ``gone``. A container's pid 1 never gets a signal it has left at the default action
    (the kernel protects namespace inits), so secretd acts for it, as ``docker run --init``
    does."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            fields = dict(line.split(":", 1) for line in fh if ":" in line)
    except OSError:
        return "gone"
    bit = 1 << (signum - 1)
    if int(fields["SigCgt"], 16) & bit:
        return "caught"
    return "ignored" if int(fields["SigIgn"], 16) & bit else "default"


def init_pid(directory: Path) -> int:
    """The container's pid 1 as seen from the host (0 until runc has written it)."""
    try:
        return int((directory / "pid").read_text())
    except (OSError, ValueError):
        return 0


def claim_name(base: Path, name: str, container_id: str) -> None:
    """Reserve ``--name`` atomically (a symlink), or say who holds it.

    Raises:
        UsageError: an invalid name, or one another container holds.
    """
    if not NAME_RE.fullmatch(name):
        raise UsageError(f"invalid container name {name!r}", "use letters, digits, _ . -")
    names = base / NAMES
    names.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        os.symlink(container_id, names / name)
    except FileExistsError:
        holder = os.readlink(names / name)
        raise UsageError(
            f"the container name {name!r} is already in use by container {holder[:12]}",
            f"remove it with 'secretd rm {name}' or choose another name",
        ) from None


def records(config: Config) -> list[tuple[Path, Record]]:
    base = containers_dir(config)
    found = []
    for entry in sorted(base.iterdir()) if base.is_dir() else ():
        if not entry.name.startswith(".") and (entry / "meta.json").is_file():
            try:
                found.append((entry, load(entry)))
            except (OSError, ValueError, UsageError):
                continue  # being written or taken down right now, or damaged
    return sorted(found, key=lambda item: item[1].created, reverse=True)


def find(config: Config, ref: str) -> tuple[Path, Record]:
    """A container by name, full id or unambiguous id prefix.

    Raises:
        UsageError: no such container, or a prefix that matches several.
    """
    every = records(config)
    matches = [item for item in every if item[1].name == ref] or [
        item for item in every if ref and item[1].id.startswith(ref)
    ]
    if len(matches) != 1:
        what = "no such container" if not matches else "several containers match"
        raise UsageError(f"{what}: {ref}", "see 'secretd ps -a'")
    return matches[0]


def clean_signals() -> dict[str, Any]:
    """``posix_spawn`` arguments that start runc, and so the container, with every signal
    at its default action and none blocked, whatever secretd inherited or set up (a shell
    starts background jobs with SIGINT ignored; runc would pass that on)."""
    every = signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP}
    return {"setsigdef": every, "setsigmask": ()}


def runc(record: Record, *args: str) -> subprocess.CompletedProcess[bytes]:
    """One runc subcommand on this container's state root; its output is for errors."""
    import subprocess

    return subprocess.run(
        [record.runc, "--root", record.runc_root, *args],
        stdin=subprocess.DEVNULL, capture_output=True, check=False,
    )


def runc_error(directory: Path) -> str:
    """The last error runc logged (its ``--log-format json`` file), or ''."""
    try:
        lines = (directory / "runc.log").read_text(errors="replace").splitlines()
    except OSError:
        return ""
    for line in reversed(lines):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("level") in ("error", "fatal"):
            return str(entry.get("msg", ""))
    return ""


def take_down_container(directory: Path, record: Record, mount: HostMount | None = None,
             keep_record: bool = False) -> None:
    """Take down what a container holds: runc's state, the overlay, the secrets tmpfs,
    the bundle and the upper layer; the record and logs too unless ``keep_record``."""
    if (Path(record.runc_root) / record.id).exists():
        runc(record, "delete", "--force", record.id)
    unmount(directory / "rootfs")
    if mount is None and record.mount and os.path.isdir(record.mount):
        mount = HostMount(Path(record.mount), os.open(record.mount, DIR_FLAGS), Layout((), ()))
    if mount is not None:
        mount.remove()
    if keep_record:
        for name in ("rootfs", "upper", "work", "config.json", "pid", "hosts", "hostname"):
            remove_path(directory / name)
        return
    if record.name:
        link = directory.parent / NAMES / record.name
        if os.path.islink(link) and os.readlink(link) == record.id:
            link.unlink()
    remove_path(directory, ignore_errors=True)


def wait_owner(record: Record, timeout: float) -> bool:
    """Wait until the container's owner is gone (it tears down on its way out)."""
    if not alive(record.owner, record.owner_start):
        return True
    try:
        fd = os.pidfd_open(record.owner)
    except ProcessLookupError:
        return True
    try:
        return pidfd_ended(fd, timeout)
    finally:
        os.close(fd)


def stop(config: Config, ref: str, timeout: float = STOP_TIMEOUT) -> Record:
    """``docker stop``: SIGTERM to the command, SIGKILL after ``timeout`` seconds."""
    directory, record = find(config, ref)
    if record.state() not in ("running", "created"):
        return record
    runc(record, "kill", record.id, "TERM")
    pid = init_pid(directory)
    if pid and disposition(pid, signal.SIGTERM) == "default":
        timeout = 0  # it cannot react to SIGTERM: no point in waiting for it
    if not wait_owner(record, timeout):
        runc(record, "kill", record.id, "KILL")
        if not wait_owner(record, STOP_TIMEOUT):
            raise LaunchError(f"container {record.id[:12]} does not stop",
                                "see 'secretd container ls -a'")
    return load(directory) if (directory / "meta.json").exists() else record


def remove(config: Config, ref: str, force: bool = False) -> Record:
    """``docker rm``: a stopped (or abandoned) container's record, logs and leftovers.

    Raises:
        UsageError: the container is running and ``force`` was not given.
    """
    directory, record = find(config, ref)
    if record.state() in ("running", "created"):
        if not force:
            raise UsageError(f"container {record.id[:12]} is running",
                             "stop it first with 'secretd stop', or use 'secretd rm -f'")
        runc(record, "kill", record.id, "KILL")
        wait_owner(record, STOP_TIMEOUT)
    if directory.exists():
        current = load(directory) if (directory / "meta.json").exists() else record
        take_down_container(directory, current)
    return record


def remove_dead_containers(config: Config) -> list[str]:
    """Take down containers whose secretd was killed (their owner is gone while they
    still run or were being set up); returns their ids. Safe to run at any time."""
    reaped = []
    for directory, record in records(config):
        if record.state() != "dead":
            continue
        try:
            runc(record, "kill", record.id, "KILL")
            take_down_container(directory, record)
        except (OSError, SecretdError) as exc:  # one that resists must not keep the others
            why = exc.line() if isinstance(exc, SecretdError) else type(exc).__name__
            log.error("cannot take down container %s: %s", record.id[:12], why)
            continue
        reaped.append(record.id)
    return reaped


def layers_in_use(config: Config) -> set[str]:
    """Cache directory names of layers some container stacks (kept by ``image rm``)."""
    return {Path(layer).name for _, record in records(config) for layer in record.layers}

