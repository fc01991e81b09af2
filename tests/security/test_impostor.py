"""A local user cannot pose as the daemon: the client checks the socket's directories, the
socket and the listening process before it sends a byte, and secretd never uses a runtime
directory someone else made."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import (
    COMMANDS,
    NOBODY,
    Impostor,
    Victim,
    as_user,
    popen_as,
    start_impostor,
    wait_for,
)

pytestmark = pytest.mark.root

VALUE = "victim-value-0d5e7a"
HINT = "set XDG_RUNTIME_DIR or SECRETD_RUNTIME_DIR to a directory of your own"


def squat(victim: Victim, attacker_dir: Path, impostors: list[Impostor]) -> Impostor:
    """``nobody`` creates the victim's fallback runtime directory first and listens there."""
    impostor = start_impostor(victim.runtime / "secretd.sock", attacker_dir)
    impostors.append(impostor)
    assert victim.runtime.stat().st_uid == NOBODY
    return impostor


def test_secret_create_sends_no_byte_to_an_impostor(
    victim: Victim, attacker_dir: Path, impostors: list[Impostor]
) -> None:
    impostor = squat(victim, attacker_dir, impostors)
    created = victim.secretd("secret", "create", "api_key", "-", input=VALUE)
    assert impostor.report() == {"connections": 0, "bytes": 0, "fds": 0}
    assert created.returncode == 0, created.stderr
    assert created.stderr == (
        f"secretd: warning: ignored the daemon socket {victim.runtime}/secretd.sock: "
        f"{victim.runtime} belongs to uid 65534 (nobody), not to you or root; "
        f"working without the daemon: {HINT}\n"
    )
    listed = victim.secretd("secret", "ls")
    assert "api_key" in listed.stdout  # it went to the victim's own store


@pytest.mark.parametrize("via", COMMANDS)
def test_run_passes_no_descriptor_to_an_impostor(
    victim: Victim, attacker_dir: Path, impostors: list[Impostor], via: str
) -> None:
    impostor = squat(victim, attacker_dir, impostors)
    result = victim.secretd("run", "--", "sh", "-c", "echo ran in-process", via=COMMANDS[via])
    assert impostor.report() == {"connections": 0, "bytes": 0, "fds": 0}
    assert (result.returncode, result.stdout) == (0, "ran in-process\n"), result.stderr
    assert "ignored the daemon socket" in result.stderr


def test_a_named_impostor_is_refused_before_anything_is_sent(
    victim: Victim, attacker_dir: Path, impostors: list[Impostor]
) -> None:
    impostor = squat(victim, attacker_dir, impostors)
    host = f"unix://{impostor.socket}"
    created = victim.secretd(
        "secret", "create", "api_key", "-", input=VALUE, extra_env={"SECRETD_HOST": host}
    )
    assert impostor.report() == {"connections": 0, "bytes": 0, "fds": 0}
    assert created.returncode == 125
    assert created.stderr == (
        f"secretd: refusing the daemon socket {impostor.socket}: {victim.runtime} belongs to "
        "uid 65534 (nobody), not to you or root: unset SECRETD_HOST, or name a daemon that "
        "root or you run\n"
    )


@pytest.fixture
def root_dir() -> Iterator[Path]:
    """A directory only root may change: any socket in it passes the directory checks."""
    with tempfile.TemporaryDirectory(prefix="secretd-trusted-") as name:
        path = Path(name)
        path.chmod(0o755)
        yield path


def linked_impostor(
    root_dir: Path, attacker_dir: Path, impostors: list[Impostor], owner: int
) -> tuple[Impostor, Path]:
    """``nobody`` listens; its socket is hard-linked into root's directory, the link
    given to ``owner``."""
    impostor = start_impostor(attacker_dir / "run" / "secretd.sock", attacker_dir)
    impostors.append(impostor)
    linked = root_dir / "secretd.sock"
    os.link(impostor.socket, linked)
    os.chown(linked, owner, owner, follow_symlinks=False)
    return impostor, linked


def test_a_listener_of_another_user_is_refused_even_in_a_trusted_place(
    root_dir: Path, attacker_dir: Path, impostors: list[Impostor]
) -> None:
    """``SO_PEERCRED``: the socket file is root's, in root's directory, yet ``nobody``
    listens on it (a hard link to nobody's socket): root's client sends nothing."""
    impostor, linked = linked_impostor(root_dir, attacker_dir, impostors, owner=0)
    created = subprocess.run(
        [sys.executable, "-m", "secretd", "secret", "create", "api_key", "-"],
        input=VALUE, capture_output=True, text=True, timeout=60,
        env=os.environ | {"SECRETD_HOST": f"unix://{linked}"},
    )  # fmt: skip
    report = impostor.report()
    assert (report["bytes"], report["fds"]) == (0, 0)
    assert created.returncode == 125
    assert created.stderr == (
        f"secretd: refusing the daemon socket {linked}: {linked} is served by uid 65534 "
        "(nobody), not by you or root: unset SECRETD_HOST, or name a daemon that root or "
        "you run\n"
    )


@pytest.mark.parametrize("owner", [0, NOBODY], ids=["served-by-nobody", "socket-of-nobody"])
def test_the_compiled_client_sends_no_run_where_the_full_cli_would_not(
    root_dir: Path, attacker_dir: Path, impostors: list[Impostor], owner: int
) -> None:
    """The compiled client's own checks (the socket's owner, ``SO_PEERCRED``) against a
    listener of ``nobody``'s in root's directory: nothing reaches it, and the user reads
    the full CLI's refusal, word for word."""
    impostor, linked = linked_impostor(root_dir, attacker_dir, impostors, owner)
    env = os.environ | {"SECRETD_HOST": f"unix://{linked}"}
    done = {
        via: subprocess.run(
            [*command, "run", "--", "true"], capture_output=True, text=True, timeout=60, env=env
        )
        for via, command in COMMANDS.items()
    }
    report = impostor.report()
    assert (report["bytes"], report["fds"]) == (0, 0)
    compiled, module = done["compiled"], done["module"]
    assert (compiled.returncode, compiled.stdout, compiled.stderr) == (
        module.returncode, module.stdout, module.stderr,
    )  # fmt: skip
    assert compiled.returncode == 125
    assert compiled.stderr.startswith(f"secretd: refusing the daemon socket {linked}: ")


def start_daemon(victim: Victim) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "secretd", "daemon"]
    return popen_as(
        victim.uid, argv, victim.env(), cwd=victim.home,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def daemon_refuses(victim: Victim) -> str:
    """The daemon's one line when it will not use the victim's runtime directory."""
    proc = start_daemon(victim)
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:  # it accepted the directory and serves: stop it
            proc.kill()
            proc.communicate()
    assert proc.returncode == 125, err
    return err.splitlines(keepends=True)[-1]  # after its log line "not locking memory"


def test_a_runtime_directory_another_user_made_is_refused(
    victim: Victim, attacker_dir: Path
) -> None:
    as_user(NOBODY, ["mkdir", "-m", "0777", str(victim.runtime)], {"PATH": "/usr/bin:/bin"})
    assert daemon_refuses(victim) == (
        f"secretd: refusing the socket directory {victim.runtime}: {victim.runtime} belongs "
        f"to uid 65534 (nobody), not to you or root: {HINT}\n"
    )
    assert os.listdir(victim.runtime) == []


def test_a_runtime_directory_others_may_write_is_refused(victim: Victim) -> None:
    victim.runtime.mkdir(mode=0o700)
    os.chown(victim.runtime, victim.uid, victim.uid)
    victim.runtime.chmod(0o777)
    assert daemon_refuses(victim) == (
        f"secretd: refusing the socket directory {victim.runtime}: {victim.runtime} is "
        f"writable by others (mode 0777): {HINT}\n"
    )


def test_a_symlinked_runtime_directory_is_refused(victim: Victim, attacker_dir: Path) -> None:
    target = victim.home / "elsewhere"
    target.mkdir(mode=0o700)
    os.chown(target, victim.uid, victim.uid)
    as_user(NOBODY, ["ln", "-s", str(target), str(victim.runtime)], {"PATH": "/usr/bin:/bin"})
    assert daemon_refuses(victim) == (
        f"secretd: refusing the socket directory {victim.runtime}: {victim.runtime} is a "
        f"symbolic link: {HINT}\n"
    )
    assert os.listdir(target) == []


def test_the_fallback_runtime_directory_is_made_private_and_used(victim: Victim) -> None:
    proc = start_daemon(victim)
    sock = victim.runtime / "secretd.sock"
    try:
        wait_for(sock.exists, "the victim's daemon to listen")
        info = victim.runtime.stat()
        assert (info.st_uid, oct(info.st_mode & 0o7777)) == (victim.uid, "0o700")
        listed = victim.secretd("--debug", "ps")
        assert listed.returncode == 0, listed.stderr
        assert f"using the daemon at {sock}" in listed.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
