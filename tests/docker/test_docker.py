"""``secretd run --runtime docker``: Swarm's /run/secrets for a plain container, against a
real dockerd (see conftest.py)."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from secretd.runtime.engines.reaper import remove_orphan_mounts, watch_destroyed
from tests.conftest import Runner
from tests.docker.conftest import IMAGE, Dockerd
from tests.support.engines import Bind, mounts_left
from tests.support.swarm import Swarm
from tests.support.waiting import free_port, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.root]


def run(secretd: Runner, *args: str, **kwargs: object):  # type: ignore[no-untyped-def]
    return secretd("run", "--runtime", "docker", *args, **kwargs)


def test_done_when_value_reaches_the_container(secretd: Runner, bound: Bind) -> None:
    values = bound("api_key")
    done = run(secretd, "--rm", "--secret", "api_key", IMAGE, "cat", "/run/secrets/api_key")
    assert (done.returncode, done.stdout, done.stderr) == (0, values["api_key"], "")


def test_inside_owner_mode_tmpfs_readonly(
    secretd: Runner, bound: Bind, clean_environ: dict[str, Path]
) -> None:
    values = bound("api_key", "db_pass", "tls_key")
    script = (
        "stat -c '%a %u %g %s %n' /run/secrets/* /etc/tls.key; "
        "grep -e ' /run/secrets ' -e ' /etc/tls.key ' /proc/mounts | cut -d' ' -f3,4; "
        "cat /run/secrets/k; echo; "
        "echo x > /run/secrets/new 2>/dev/null || echo write refused; "
        "exit 3"
    )
    done = run(
        secretd, "--rm",
        "--secret", "source=api_key,target=k,uid=1000,gid=1000,mode=0400",
        "--secret", "db_pass",
        "--secret", "source=tls_key,target=/etc/tls.key,mode=0440,gid=1000",
        IMAGE, "sh", "-c", script,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:3] == [
        f"444 0 0 {len(values['db_pass'])} /run/secrets/db_pass",
        f"400 1000 1000 {len(values['api_key'])} /run/secrets/k",
        f"440 0 1000 {len(values['tls_key'])} /etc/tls.key",
    ]
    for line in lines[3:5]:
        fstype, options = line.split()
        assert fstype == "tmpfs" and options.split(",")[0] == "ro"
    assert lines[5:] == [values["api_key"], "write refused"]
    assert mounts_left(clean_environ["runtime"]) == []


def test_exit_status_stdin_and_stderr(secretd: Runner) -> None:
    done = run(secretd, "--rm", "-i", IMAGE, "sh", "-c", "cat; echo oops >&2; exit 7", input="in\n")
    assert (done.returncode, done.stdout, done.stderr) == (7, "in\n", "oops\n")
    missing = run(secretd, "--rm", IMAGE, "no-such-command")
    assert missing.returncode == 127
    assert missing.stderr.startswith("secretd: cannot run the command: ")
    no_image = run(secretd, "--rm", "busybox:no-such-tag", "true")
    assert no_image.returncode == 125
    assert no_image.stderr.startswith("secretd: image not found: ")


def test_signals_are_forwarded(secretd: Runner, dockerd: Dockerd) -> None:
    import signal
    import subprocess
    import sys

    script = "trap 'echo got TERM; exit 9' TERM; echo ready; sleep 30 & wait"
    proc = subprocess.Popen(
        [sys.executable, "-m", "secretd", "run", "--runtime", "docker", "--rm", IMAGE,
         "sh", "-c", script],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    with proc:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        # Output can flow before the SignalForwarder knows the container (a
        # signal then ends secretd itself, by design); give it a moment.
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 9
        assert proc.stdout.read() == "got TERM\n"


def _listing(output: str) -> list[tuple[str, ...]]:
    """``ls -ln`` rows as (mode, links, uid, gid, size, name), without the date."""
    rows = [line.split() for line in output.splitlines() if line[:1] in ("-", "d", "l")]
    return [(*row[:5], row[-1]) for row in rows]


def _swarm_task_output(docker: Dockerd, service: str) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = docker("service", "ps", service, "--format", "{{.CurrentState}}|{{.Error}}")
        if state.startswith(("Complete", "Failed", "Rejected")):
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"swarm task did not finish: {state}")
    label = f"label=com.docker.swarm.service.name={service}"
    container = docker("ps", "-aq", "--filter", label).split()[0]
    return docker("logs", container)


def test_parity_with_a_swarm_service(secretd: Runner, bound: Bind, swarm: Swarm) -> None:
    docker = swarm.docker
    values = bound("api_key", "db_pass")
    specs = ["source=api_key,target=k,uid=1000,gid=1000,mode=0400", "source=db_pass"]
    flags = [arg for spec in specs for arg in ("--secret", spec)]
    script = 'ls -ln /run/secrets; for f in /run/secrets/*; do echo "$f=$(cat $f)"; done'
    for name, value in values.items():
        docker("secret", "create", name, "-", input=value)
    try:
        docker(
            "service", "create", "--detach", "--name", "parity", "--restart-condition", "none",
            *flags, IMAGE, "sh", "-c", script,
        )  # fmt: skip
        expected = _swarm_task_output(docker, "parity")
    finally:
        docker("service", "rm", "parity", check=False)
        docker("secret", "rm", *values, check=False)
    ours = run(secretd, "--rm", *flags, IMAGE, "sh", "-c", script)
    assert ours.returncode == 0, ours.stderr
    assert _listing(ours.stdout) == _listing(expected)
    assert len(_listing(expected)) == 2
    contents = [line for line in ours.stdout.splitlines() if line.startswith("/run/secrets/")]
    assert contents == [line for line in expected.splitlines() if line.startswith("/run/")]
    assert contents == [
        f"/run/secrets/db_pass={values['db_pass']}",
        f"/run/secrets/k={values['api_key']}",
    ]


def test_inspect_shows_no_value_and_env_warns(
    secretd: Runner, bound: Bind, dockerd: Dockerd
) -> None:
    values = bound("api_key")
    token = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
    done = run(
        secretd, "--name", "inspected", "--secret", "api_key", "-e", f"API_KEY={token}",
        IMAGE, "sh", "-c", "test -s /run/secrets/api_key",
    )  # fmt: skip
    try:
        assert done.returncode == 0, done.stderr
        assert "secretd: warning: -e API_KEY looks like a secret" in done.stderr
        assert values["api_key"] not in done.stderr
        inspected = dockerd("inspect", "inspected")
        assert values["api_key"] not in inspected
        assert token in inspected  # what the warning is about: -e values are exposed
        labels = json.loads(inspected)[0]["Config"]["Labels"]
        assert labels["io.secretd.secrets"] == "api_key"
        assert labels["io.secretd.mount"].startswith(str(Path.cwd() / "runtime" / "mounts"))
    finally:
        dockerd("rm", "-f", "inspected", check=False)


def test_detached_mount_goes_with_the_container(
    secretd: Runner, bound: Bind, dockerd: Dockerd, clean_environ: dict[str, Path]
) -> None:
    runtime_dir = clean_environ["runtime"]
    bound("api_key")
    reaper = watch_destroyed(runtime_dir)
    try:
        done = run(secretd, "-d", "--secret", "api_key", IMAGE, "sleep", "60")
        assert done.returncode == 0, done.stderr
        cid = done.stdout.strip()
        assert len(cid) == 64
        assert len(mounts_left(runtime_dir)) == 2  # the mount and its directory
        assert dockerd("exec", cid, "cat", "/run/secrets/api_key").startswith("sk-api_key-")
        dockerd("rm", "-f", cid)
        deadline = time.monotonic() + 2
        while mounts_left(runtime_dir) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert mounts_left(runtime_dir) == []
    finally:
        reaper.stop()
    for thread in threading.enumerate():
        if thread.name == "secretd-reaper-docker":
            thread.join(2)
            assert not thread.is_alive(), "the reaper did not stop"


def test_leftover_mounts_are_reaped_without_a_watcher(
    secretd: Runner, bound: Bind, dockerd: Dockerd, clean_environ: dict[str, Path]
) -> None:
    runtime_dir = clean_environ["runtime"]
    bound("api_key")
    running = run(secretd, "-d", "--secret", "api_key", IMAGE, "sleep", "60")
    gone = run(secretd, "-d", "--secret", "api_key", IMAGE, "sleep", "60")
    assert running.returncode == gone.returncode == 0
    assert remove_orphan_mounts(runtime_dir) == []  # both containers exist
    dockerd("rm", "-f", gone.stdout.strip())
    try:
        done = run(secretd, "--rm", IMAGE, "true")  # reaps before it launches
        assert done.returncode == 0, done.stderr
        assert len(mounts_left(runtime_dir)) == 2  # only the running container's
        assert dockerd("exec", running.stdout.strip(), "ls", "/run/secrets") == "api_key\n"
    finally:
        dockerd("rm", "-f", running.stdout.strip())
    assert remove_orphan_mounts(runtime_dir) != [] and mounts_left(runtime_dir) == []


def test_remote_engine_is_refused(
    secretd: Runner, bound: Bind, dockerd: Dockerd, clean_environ: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    bound("api_key")
    before = dockerd("ps", "-aq")
    monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{free_port()}")
    done = run(secretd, "--rm", "--secret", "api_key", IMAGE, "true")
    assert done.returncode == 125
    assert done.stderr.startswith("secretd: Docker at tcp://127.0.0.1:")
    assert "is not on this machine" in done.stderr and "use --runtime oci" in done.stderr
    assert done.stderr.count("\n") == 1
    assert dockerd("ps", "-aq") == before
    assert mounts_left(clean_environ["runtime"]) == []


def test_auto_picks_docker_when_it_answers(secretd: Runner, dockerd: Dockerd) -> None:
    info = secretd("info")
    assert f"image runtime: docker  (Docker answers at {dockerd.host})" in info.stdout
    done = secretd("run", "--rm", IMAGE, "sh", "-c", "hostname | wc -c")
    assert (done.returncode, done.stdout) == (0, "13\n")  # a 12-digit container id


@pytest.fixture
def secretd_daemon(tmp_path: Path, bound: Bind, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A real ``secretd daemon`` that serves ``api_key`` and watches this dockerd; the
    test's secretd commands go through it (``SECRETD_HOST``)."""
    bound("api_key")
    config = tmp_path / "secretd.toml"
    config.write_text(config.read_text() + '\n[daemon]\nengines = ["docker"]\n')
    socket_path = tmp_path / "daemon" / "secretd.sock"
    socket_path.parent.mkdir()
    with (tmp_path / "daemon.log").open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "secretd", "daemon", "--socket", str(socket_path)],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            wait_for(socket_path.exists, "the secretd daemon's socket")
            monkeypatch.setenv("SECRETD_HOST", f"unix://{socket_path}")
            yield f"unix://{socket_path}"
        finally:
            proc.terminate()
            assert proc.wait(15) == 0, (tmp_path / "daemon.log").read_text()


def test_through_the_daemon_a_detached_mount_goes_with_its_container(
    secretd: Runner, secretd_daemon: str, dockerd: Dockerd, clean_environ: dict[str, Path]
) -> None:
    runtime_dir = clean_environ["runtime"]
    done = run(secretd, "-d", "--secret", "api_key", IMAGE, "sleep", "60")
    assert done.returncode == 0, done.stderr
    cid = done.stdout.strip()
    assert len(cid) == 64 and mounts_left(runtime_dir)
    assert dockerd("exec", cid, "cat", "/run/secrets/api_key").startswith("sk-api_key-")
    dockerd("rm", "-f", cid)
    wait_for(lambda: mounts_left(runtime_dir) == [], "the daemon to remove the mount", 2)


def _set_size(fd: int, rows: int, columns: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))


def test_a_terminal_resize_reaches_the_container(dockerd: Dockerd) -> None:
    controller, terminal = pty.openpty()
    _set_size(terminal, 24, 80)
    proc = subprocess.Popen(
        [sys.executable, "-m", "secretd", "run", "--runtime", "docker", "--rm", "-it", IMAGE,
         "sh", "-c", "sleep 1; stty size; while read line; do stty size; done"],
        stdin=terminal, stdout=terminal, stderr=terminal, start_new_session=True,
    )  # fmt: skip
    os.close(terminal)
    output = b""
    deadline = time.monotonic() + 30
    while b"24 80" not in output and time.monotonic() < deadline:
        output += os.read(controller, 1024)
    _set_size(controller, 40, 100)
    proc.send_signal(signal.SIGWINCH)  # what the kernel sends the terminal's foreground job
    while b"40 100" not in output and time.monotonic() < deadline:
        os.write(controller, b"\n")  # ask again: the resize travels through the engine
        time.sleep(0.1)
        output += os.read(controller, 4096)
    os.write(controller, b"\x04")  # end of input: the loop, and the container, end
    assert proc.wait(30) == 0
    os.close(controller)
    assert b"40 100" in output, output
