"""The supervisor of a detached container: ``python -m secretd.runtime.oci.monitor DIR``.

``secretd run -d`` prepares the bundle, then starts this small process and returns. It
leaves its parent at once (so neither the CLI nor the daemon has a child to reap), becomes
a child subreaper, starts the container with ``runc run --detach`` (the container's
process is then re-parented to it), tells the launcher on file descriptor 3 whether the
start worked, and then waits: when the command ends it records the exit status and takes
down the overlay, the secrets tmpfs and runc's state, keeping only the record and the logs
for ``secretd container ls -a`` and ``secretd logs`` (``--rm``: nothing at all).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from ... import _linux
from ..process import exit_status, start_time
from .state import Record, clean_signals, load, runc_error, save, take_down_container

PR_SET_CHILD_SUBREAPER = 36
REPORT_FD = 3


def _start(directory: Path, record: Record) -> int:
    """``runc run --detach`` with the container's stdio on its log files; returns the
    container process's pid, or raises with runc's own words."""
    stdin = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    out = os.open(directory / "stdout.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    err = os.open(directory / "stderr.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    argv = [record.runc, "--root", record.runc_root, "--log", str(directory / "runc.log"),
            "--log-format", "json", "run", "--detach", "--bundle", str(directory),
            "--pid-file", str(directory / "pid"), record.id]
    actions = [(os.POSIX_SPAWN_DUP2, fd, target) for target, fd in enumerate((stdin, out, err))]
    try:
        pid = os.posix_spawn(record.runc, argv, {"PATH": os.environ.get("PATH", "")},
                             file_actions=actions, **clean_signals())
    finally:
        for fd in (stdin, out, err):
            os.close(fd)
    _, raw = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(raw) != 0:
        raise RuntimeError(runc_error(directory) or "runc failed to start the container")
    return int((directory / "pid").read_text())


def _wait(pid: int) -> int:
    """Reap children (we are their subreaper) until ``pid`` ends; its exit status."""
    while True:
        try:
            done, raw = os.waitpid(-1, 0)
        except ChildProcessError:
            return 255  # not ours after all: runc lost it
        if done == pid:
            code = os.waitstatus_to_exitcode(raw)
            return exit_status(code)


def main(directory: Path) -> None:
    if os.fork():
        os._exit(0)
    os.chdir("/")
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    _linux.prctl(PR_SET_CHILD_SUBREAPER, 1)
    record = load(directory)
    record.owner, record.owner_start = os.getpid(), start_time(os.getpid())
    save(directory, record)
    try:
        pid = _start(directory, record)
    except Exception as exc:  # noqa: BLE001 - every failure goes back to the launcher
        os.write(REPORT_FD, f"error:{exc}".encode()[:4000])
        os._exit(1)
    record.status = "running"
    save(directory, record)
    os.write(REPORT_FD, b"ok")
    os.close(REPORT_FD)
    code = _wait(pid)
    record.status, record.exit_code, record.finished = "exited", code, time.time()
    save(directory, record)
    take_down_container(directory, record, keep_record=not record.remove)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
