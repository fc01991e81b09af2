"""The thin client's run as a user meets it: a terminal, signals, a daemon that dies; and
the daemon's answer to a raw, malformed ``argv`` request."""

from __future__ import annotations

import os
import pty
import select
import signal
import socket
import subprocess
import sys
import time

import pytest

from secretd import protocol

from .conftest import Fast


def _pty_run(argv: list[str], env: dict[str, str], cwd: str) -> tuple[int, str]:
    """``argv`` with a terminal as stdin, stdout and stderr; its status and output."""
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        argv, stdin=terminal, stdout=terminal, stderr=terminal, env=env, cwd=cwd
    )
    os.close(terminal)
    chunks = []
    while True:
        ready, _, _ = select.select([controller], [], [], 30)
        try:
            data = os.read(controller, 4096) if ready else b""
        except OSError:  # EIO: every process holding the terminal is gone
            data = b""
        if not data:
            break
        chunks.append(data)
    os.close(controller)
    return proc.wait(30), b"".join(chunks).decode()


def test_terminal(fast: Fast) -> None:
    script = "test -t 0 && test -t 1 && echo on-a-terminal; stty size"
    args = ["run", "--", "sh", "-c", script]
    cwd = str(fast.root / "work")
    thin = _pty_run([str(fast.launcher), *args], fast.env(), cwd)
    full = _pty_run([sys.executable, "-m", "secretd", *args], fast.env(False), cwd)
    assert thin == full
    assert thin[0] == 0 and "on-a-terminal" in thin[1]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGUSR1])
def test_signal_reaches_the_command(fast: Fast, signum: int) -> None:
    # ready a moment after the start: the client learns of it (its signals go to the
    # command from then on) from a message that may trail the command's first output
    loop = "while :; do sleep 0.05; done"
    script = f"trap 'echo caught; exit 7' {signum}; sleep 0.5; echo ready; {loop}"
    proc = subprocess.Popen(
        [str(fast.launcher), "run", "--", "sh", "-c", script],
        env=fast.env(), cwd=fast.root / "work", stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signum)
    assert proc.wait(30) == 7
    with proc.stdout:
        assert proc.stdout.read() == "caught\n"


def test_daemon_dying_ends_the_run_with_125(fast: Fast, tmp_path) -> None:
    """Its own daemon, killed mid-run: the client says so and exits 125, the command is gone."""
    env = fast.env() | {"SECRETD_RUNTIME_DIR": str(tmp_path)}
    log = tmp_path / "daemon.log"
    with log.open("wb") as out:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "secretd", "daemon"], env=env, stderr=out,
            start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while not (tmp_path / "secretd.sock").exists():
            assert time.monotonic() < deadline and daemon.poll() is None, log.read_text()
            time.sleep(0.05)
        marker = f"sleep 60.{os.getpid()}"
        client = subprocess.Popen(
            [str(fast.launcher), "run", "--", "sh", "-c", f"echo ready; exec {marker}"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert client.stdout is not None and client.stdout.readline() == "ready\n"
        daemon.kill()
        assert client.wait(30) == 125
        assert client.stderr is not None
        with client.stdout, client.stderr:
            said = client.stderr.read()
        assert said == (
            "secretd: the secretd daemon closed the connection before the command ended: "
            "see the daemon's log\n"
        )
        deadline = time.monotonic() + 10
        ps = ["ps", "-eo", "args"]
        while marker in subprocess.run(ps, capture_output=True, text=True).stdout:
            assert time.monotonic() < deadline, "the command outlived the daemon"
            time.sleep(0.05)
    finally:
        daemon.kill()
        daemon.wait()


@pytest.mark.parametrize(
    ("fields", "fds"),
    [
        ({"argv": "run -- true", "env": {}, "cwd": "/"}, 3),
        ({"argv": ["--", "true"], "env": {"A": 1}, "cwd": "/"}, 3),
        ({"argv": ["--", "true"], "env": {}, "cwd": "relative"}, 3),
        ({"argv": [], "env": {}, "cwd": "/"}, 3),
        ({"argv": ["--", "true"], "env": {}, "cwd": "/"}, 0),
    ],
    ids=["argv-string", "env-int", "cwd-relative", "argv-empty", "no-fds"],
)
def test_malformed_request_gets_one_line(fast: Fast, fields: dict[str, object], fds: int) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(fast.socket))
        chan = protocol.Channel(sock)
        chan.send(protocol.request("argv", **fields), [0, 1, 2][:fds])
        reply, _ = chan.receive(10)
    assert reply["ok"] is False
    assert "\n" not in reply["error"] and reply["error"]


def test_no_byte_to_a_socket_someone_else_controls(fast: Fast, tmp_path) -> None:
    """A socket in a directory ``nobody`` owns (where a local user could pose as the
    daemon): the thin client never connects, and says what the full CLI says."""
    planted = tmp_path / "planted"
    planted.mkdir()
    os.chown(planted, 65534, 65534)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as impostor:
        impostor.bind(str(planted / "secretd.sock"))
        impostor.listen()
        impostor.settimeout(0)
        env = {"SECRETD_RUNTIME_DIR": str(planted)}
        thin = fast.thin("run", "--", "true", extra_env=env)
        with pytest.raises(BlockingIOError):
            impostor.accept()
        full = subprocess.run(
            [sys.executable, "-m", "secretd", "run", "--", "true"], capture_output=True,
            text=True, env=fast.env() | env, cwd=fast.root / "work", timeout=60,
        )  # fmt: skip
    assert (thin.returncode, thin.stdout, thin.stderr) == (
        full.returncode, full.stdout, full.stderr,
    )  # fmt: skip
    assert f"ignored the daemon socket {planted}/secretd.sock" in thin.stderr


def test_a_daemon_without_argv_gets_the_full_clis_run_request(fast: Fast, tmp_path) -> None:
    """A daemon of an earlier release refuses ``argv`` as unknown: the thin client hands
    over to the full CLI, whose ``run`` request that daemon serves (here: exit 7)."""
    import threading

    ops: list[str] = []

    def serve(listener: socket.socket) -> None:
        for _ in range(2):
            conn, _ = listener.accept()
            with protocol.Channel(conn) as chan:
                message, fds = chan.receive(10, max_fds=3)
                for fd in fds:
                    os.close(fd)
                ops.append(message["op"])
                if message["op"] == "argv":
                    error = "unknown request 'argv': known: ping, version, run"
                    chan.send({"ok": False, "error": error, "kind": "SecretdError"})
                else:
                    chan.send({"event": "exit", "status": 7})

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(tmp_path / "secretd.sock"))
        listener.listen()
        server = threading.Thread(target=serve, args=(listener,), daemon=True)
        server.start()
        done = fast.thin("run", "--", "true", extra_env={"SECRETD_RUNTIME_DIR": str(tmp_path)})
        server.join(10)
    assert (done.returncode, done.stderr, ops) == (7, "", ["argv", "run"])


def test_a_run_handed_back_asks_the_daemon_once_and_leaves_no_trace(fast: Fast) -> None:
    """A command without a bare ``--`` before it may name an image: the daemon hands the
    run back, and the full CLI runs it without asking the daemon again. The command's
    environment shows nothing of the hand-back."""
    before = fast.requests().count("argv")
    done = fast.thin("run", "--no-redact", "--secret", "api_key", "env")
    assert done.returncode == 0, done.stderr
    assert fast.requests().count("argv") == before + 1
    assert "PATH=" in done.stdout and "HANDED_BACK" not in done.stdout
