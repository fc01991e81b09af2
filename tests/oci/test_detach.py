"""``-d`` with ``secretd ps``/``logs``/``stop``/``rm``, 20 containers at once,
and the cleanup of what a killed secretd leaves behind."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import Runner
from tests.oci.conftest import mounts_under, run_ok
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.runc, pytest.mark.root]

Secret = Callable[[str, str], str]


def wait_until(check: Callable[[], bool], what: str) -> None:
    wait_for(check, what, timeout=20)


def test_detach_ls_logs_stop_rm(
    secretd: Runner, image: str, secret: Secret, clean_environ: dict[str, Path]
) -> None:
    runtime = clean_environ["runtime"]
    out = run_ok(secretd, "run", "-d", "--name", "web", "--secret", secret("api_key", "hunter2"),
                 image, "sh", "-c", "cat /run/secrets/api_key; echo to-stderr >&2; exec sleep 60")
    assert re.fullmatch(r"[0-9a-f]{64}\n", out)
    short = out[:12]
    assert len(mounts_under(runtime / "mounts")) == 1

    listing = run_ok(secretd, "ps")
    header, row = listing.splitlines()
    assert header.split() == ["ID", "NAME", "IMAGE", "COMMAND", "STATUS", "SECRETS", "USER"]
    assert row.split()[:2] == [short, "web"] and " api_key " in row and row.endswith("root")
    assert run_ok(secretd, "container", "ls") == listing
    assert "Up " in row and "hunter2" not in listing

    wait_until(lambda: secretd("logs", "web").stdout == "hunter2", "the container's output")
    logs = secretd("logs", short)
    assert (logs.stdout, logs.stderr) == ("hunter2", "to-stderr\n")

    result = secretd("rm", "web")
    assert result.returncode == 2 and "is running" in result.stderr

    assert run_ok(secretd, "stop", "-t", "5", "web") == "web\n"
    assert mounts_under(runtime) == []  # the secrets tmpfs left with the container
    assert run_ok(secretd, "container", "ls", "-q") == ""
    stopped = run_ok(secretd, "container", "ls", "-a").splitlines()[1]
    assert "Exited (137)" in stopped  # sleep as pid 1 cannot handle SIGTERM: killed at once
    assert secretd("logs", "web").stdout == "hunter2"

    assert run_ok(secretd, "rm", "web") == "web\n"
    assert run_ok(secretd, "container", "ls", "-a", "-q") == ""
    assert [p for p in (clean_environ["state"] / "containers").iterdir()
            if not p.name.startswith(".")] == []
    run_ok(secretd, "run", "-d", "--rm", "--name", "web", image, "true")  # the name is free
    wait_until(lambda: run_ok(secretd, "container", "ls", "-a", "-q") == "", "--rm to finish")


def test_stop_lets_a_container_handle_sigterm(secretd: Runner, image: str) -> None:
    run_ok(secretd, "run", "-d", "--name", "polite", image, "sh", "-c",
           "trap 'echo bye; exit 0' TERM; echo up; sleep 60 & wait")
    wait_until(lambda: secretd("logs", "polite").stdout == "up\n", "the trap")
    started = time.monotonic()
    run_ok(secretd, "stop", "polite")
    assert time.monotonic() - started < 5
    assert "Exited (0)" in run_ok(secretd, "container", "ls", "-a")
    assert secretd("logs", "polite").stdout == "up\nbye\n"
    assert run_ok(secretd, "rm", "polite") == "polite\n"


def test_detached_rm_removes_everything_when_the_command_ends(
    secretd: Runner, image: str, secret: Secret, clean_environ: dict[str, Path]
) -> None:
    run_ok(secretd, "run", "-d", "--rm", "--secret", secret("api_key", "v"), image, "sleep", "0.2")
    containers = clean_environ["state"] / "containers"
    wait_until(lambda: not any(p for p in containers.iterdir() if not p.name.startswith(".")),
               "the container to go")
    assert mounts_under(clean_environ["runtime"]) == []


def test_a_detached_command_that_cannot_start(secretd: Runner, image: str) -> None:
    result = secretd("run", "-d", image, "no-such-command")
    assert result.returncode == 127
    assert result.stdout == ""
    assert run_ok(secretd, "container", "ls", "-a", "-q") == ""


def test_twenty_containers_at_once_see_only_their_own_secret(
    secretd: Runner, image: str, secret: Secret
) -> None:
    def one(index: int) -> subprocess.CompletedProcess[str]:
        return secretd("run", "--rm", "--secret", secret(f"key{index}", f"value-{index}"),
                       image, "sh", "-c", "ls /run/secrets; cat /run/secrets/*")

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(one, range(20)))
    for index, result in enumerate(results):
        assert (result.returncode, result.stderr) == (0, "")
        assert result.stdout == f"key{index}\nvalue-{index}"


def test_prune_takes_down_what_a_killed_secretd_left(
    secretd: Runner, image: str, secret: Secret, clean_environ: dict[str, Path]
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "secretd", "run", "--secret", secret("api_key", "v"), image,
         "sh", "-c", "echo ready; exec sleep 60"],
        stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    assert mounts_under(clean_environ["runtime"])  # the secrets tmpfs is still mounted
    assert "Dead (secretd was interrupted" in run_ok(secretd, "container", "ls")
    out = run_ok(secretd, "prune")
    assert out.splitlines()[0] == "Deleted Containers:" and len(out.splitlines()) == 2
    assert mounts_under(clean_environ["runtime"]) == []
    assert mounts_under(clean_environ["state"]) == []
    assert run_ok(secretd, "container", "ls", "-a", "-q") == ""
