"""``secretd run --no-sandbox`` on the real host: a fresh 0700 directory on /dev/shm, 0400
files of the caller's, the variables naming them, and nothing left however secretd ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.waiting import wait_for

SHM = Path("/dev/shm")
VALUE = "hunter2-db-password"
# Compared in the shell: a value the command prints would be redacted on its way out.
SAME = f'[ "$(cat "$DB_FILE")" = {VALUE} ] && echo same'
SHOW = f'echo "$SECRETD_SECRETS_DIR"; echo "$DB_FILE"; stat -c "%a %u %F" "$SECRETD_SECRETS_DIR" "$DB_FILE"; {SAME}'  # noqa: E501


@pytest.fixture
def db(tmp_path: Path) -> str:
    (tmp_path / "db").write_text(VALUE)
    return f"db=file:{tmp_path / 'db'}"


def test_files_are_the_callers_0400_in_a_fresh_0700_tmpfs_directory(secretd, db: str) -> None:
    result = secretd("run", "--no-sandbox", "--secret", db, "--", "sh", "-c", SHOW)
    assert result.returncode == 0, result.stderr
    directory, file, dir_stat, file_stat, value = result.stdout.splitlines()
    assert directory.startswith("/dev/shm/secretd-")
    assert file == f"{directory}/db"
    assert dir_stat == f"700 {os.getuid()} directory"
    assert file_stat == f"400 {os.getuid()} regular file"
    assert value == "same"
    assert result.stderr == ""
    assert not Path(directory).exists()  # removed when the command ended


def test_exit_status_is_the_commands(secretd, db: str) -> None:
    failed = secretd("run", "--no-sandbox", "--secret", db, "--", "sh", "-c", "exit 7")
    assert failed.returncode == 7
    missing = secretd("run", "--no-sandbox", "--", "no-such-program-xyz")
    assert missing.returncode == 127
    assert missing.stderr == (
        "secretd: cannot run 'no-such-program-xyz': command not found: check PATH or the name\n"
    )


def test_chosen_secrets_dir_on_tmpfs(secretd, db: str) -> None:
    chosen = SHM / f"secretd-test-{os.getpid()}"
    result = secretd(
        "run", "--no-sandbox", "--secrets-dir", str(chosen), "--secret", db, "--",
        "sh", "-c", f'[ "$SECRETD_SECRETS_DIR" = {chosen} ] && {SAME}',
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == "same\n"
    assert not chosen.exists()


def test_secrets_dir_on_a_disk_is_refused(secretd, db: str, tmp_path: Path) -> None:
    result = secretd(
        "run", "--no-sandbox", "--secrets-dir", str(tmp_path / "s"), "--secret", db, "--", "true"
    )
    assert result.returncode == 2
    assert result.stderr == (
        f"secretd: --secrets-dir {tmp_path / 's'} is not on a tmpfs: its files would reach a "
        "disk: choose a directory under /dev/shm or drop --secrets-dir\n"
    )
    assert not (tmp_path / "s").exists()


def test_existing_secrets_dir_is_refused(secretd, db: str) -> None:
    chosen = SHM / f"secretd-test-exists-{os.getpid()}"
    chosen.mkdir()
    try:
        result = secretd("run", "--no-sandbox", "--secrets-dir", str(chosen), "--", "true")
        assert result.returncode == 2
        assert "exists; without a sandbox secretd makes a new one" in result.stderr
        assert chosen.is_dir()  # not someone else's to remove
    finally:
        chosen.rmdir()


@pytest.mark.root
def test_no_tmpfs_is_an_error_naming_the_way_out(db: str) -> None:
    """/dev/shm covered by a disk directory (in a mount namespace of the test's own) and
    no XDG_RUNTIME_DIR: statfs tells, nothing is written."""
    disk = Path.cwd() / "disk"
    disk.mkdir()
    script = (
        f'mount --bind {disk} /dev/shm && exec {sys.executable} -m secretd run --no-sandbox '
        f'--secret {db} -- true'
    )
    env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
    done = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert done.returncode == 125
    assert done.stderr.startswith(
        "secretd: no tmpfs to hold the secrets without a sandbox (/dev/shm is missing, not "
        "writable or not a tmpfs; XDG_RUNTIME_DIR is unset): give the job a tmpfs at /dev/shm"
    )
    assert list(disk.iterdir()) == []


@pytest.mark.root
def test_xdg_runtime_dir_serves_when_dev_shm_is_no_tmpfs(db: str) -> None:
    disk, runtime = Path.cwd() / "disk", Path.cwd() / "xdg"
    disk.mkdir()
    runtime.mkdir()
    script = (
        f"mount --bind {disk} /dev/shm && mount -t tmpfs tmpfs {runtime} && "
        f"{sys.executable} -m secretd run --no-sandbox --secret {db} -- "
        "sh -c 'echo \"$DB_FILE\"' && ls -A " + str(runtime)
    )
    done = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{runtime}/secretd-")
    assert done.stdout.endswith("/db\n")  # and nothing left in it: ls printed nothing


@pytest.mark.parametrize(
    ("flags", "wording"),
    [
        (["--user", "65534"], "secretd: --user needs the sandbox"),
        (["--secret", "source=file:db,target=/etc/app.key"], "'/etc/app.key' needs the sandbox"),
    ],
)
def test_what_needs_the_sandbox_is_refused(secretd, flags: list[str], wording: str) -> None:
    Path("db").write_text("x")
    result = secretd("run", "--no-sandbox", *flags, "--", "true")
    assert result.returncode == 2
    assert wording in result.stderr


def start(db: str, *command: str) -> tuple[subprocess.Popen[str], str]:
    """secretd --no-sandbox running ``command``; the secrets directory it printed."""
    script = 'echo "$SECRETD_SECRETS_DIR"; exec ' + " ".join(command)
    proc = subprocess.Popen(
        [sys.executable, "-m", "secretd", "run", "--no-sandbox", "--secret", db, "--",
         "sh", "-c", script],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    directory = proc.stdout.readline().strip()
    assert Path(directory, "db").exists()
    return proc, directory


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_directory_goes_when_secretd_is_interrupted(db: str, signum: signal.Signals) -> None:
    proc, directory = start(db, "sleep", "60")
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signum  # relayed to the command, which died of it
    assert not Path(directory).exists()
    assert err == ""


def test_directory_and_command_go_when_secretd_is_killed(db: str, tmp_path: Path) -> None:
    """SIGKILL leaves secretd no chance: the watchdog removes the directory and the
    command dies with secretd (PR_SET_PDEATHSIG)."""
    marker = tmp_path / "still-running"
    proc, directory = start(db, "sh", "-c", f"'sleep 3; touch {marker}'")
    proc.kill()
    proc.communicate(timeout=30)
    wait_for(lambda: not Path(directory).exists(), "the watchdog")
    time.sleep(3.5)
    assert not marker.exists()


def test_watchdog_survives_a_signal_to_the_whole_process_group(db: str) -> None:
    """A cancelled job gets SIGTERM in its whole process group, then SIGKILL."""
    script = (
        f"{sys.executable} -m secretd run --no-sandbox --secret {db} -- "
        "sh -c 'echo \"$SECRETD_SECRETS_DIR\"; exec sleep 60' & wait"
    )
    proc = subprocess.Popen(
        ["sh", "-c", script], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    assert proc.stdout is not None
    directory = proc.stdout.readline().strip()
    assert Path(directory).is_dir()
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    wait_for(lambda: not Path(directory).exists(), "the watchdog")


def test_each_run_has_a_new_directory_and_leaves_none(secretd, db: str) -> None:
    seen = set()
    for _ in range(3):
        result = secretd("run", "--no-sandbox", "--secret", db, "--", "printenv", "DB_FILE")
        assert result.returncode == 0
        seen.add(os.path.dirname(result.stdout.strip()))
    assert len(seen) == 3
    assert not any(Path(directory).exists() for directory in seen)


def test_on_a_terminal_the_command_reads_it_and_ctrl_c_reaches_it_once() -> None:
    """The command's process group gets the terminal's foreground (as the sandbox's does):
    it reads the terminal without being stopped, and Ctrl-C ends it with status 130."""
    secretd = f"{sys.executable} -m secretd run --no-sandbox --"
    script = (
        f"{secretd} sh -c 'read x; echo got-$x'; echo status=$?; "
        f"{secretd} sleep 30; echo status=$?"
    )
    feed = subprocess.Popen(
        ["timeout", "60", "script", "-qec", script, "/dev/null"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert feed.stdin is not None and feed.stdout is not None
    feed.stdin.write("hello\n")
    feed.stdin.flush()
    lines: list[str] = []
    while not any(line.startswith("status=") for line in lines):
        line = feed.stdout.readline()
        assert line, f"the command stopped or ended early: {lines}"  # stopped: timeout ends it
        lines.append(line.strip())
    time.sleep(1)  # the second command is running
    feed.stdin.write("\x03")
    feed.stdin.flush()
    rest = feed.stdout.read()
    feed.stdin.close()
    feed.stdout.close()
    assert feed.wait(timeout=30) == 0
    assert "got-hello" in lines and "status=0" in lines
    assert rest.strip().endswith("status=130")


@pytest.mark.root
def test_another_user_cannot_read_the_files_while_the_command_runs(db: str) -> None:
    """nobody, during the run, at the path the command was given."""
    attack = (
        'setpriv --reuid 65534 --regid 65534 --clear-groups cat "$DB_FILE" 2>&1; '
        'setpriv --reuid 65534 --regid 65534 --clear-groups ls "$SECRETD_SECRETS_DIR" 2>&1; true'
    )
    done = subprocess.run(
        [sys.executable, "-m", "secretd", "run", "--no-sandbox", "--secret", db, "--",
         "sh", "-c", attack],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert VALUE not in done.stdout
    assert done.stdout.count("Permission denied") == 2


@pytest.mark.root
def test_a_planted_secrets_dir_is_never_written_through(db: str, tmp_path: Path) -> None:
    """Another user plants the --secrets-dir path on /dev/shm first, as a symlink to a
    directory of theirs or as their own directory: secretd refuses, writing nothing."""
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, 65534, 65534)
    link = SHM / f"secretd-test-link-{os.getpid()}"
    owned = SHM / f"secretd-test-owned-{os.getpid()}"
    link.symlink_to(theirs)
    owned.mkdir()
    os.chown(owned, 65534, 65534)
    try:
        for planted in (link, owned):
            done = subprocess.run(
                [sys.executable, "-m", "secretd", "run", "--no-sandbox", "--secrets-dir",
                 str(planted), "--secret", db, "--", "true"],
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert done.returncode == 2
            assert "exists; without a sandbox secretd makes a new one" in done.stderr
        assert list(theirs.iterdir()) == [] and list(owned.iterdir()) == []
        assert link.is_symlink() and owned.is_dir()
    finally:
        link.unlink()
        owned.rmdir()


def test_a_stopped_command_still_ends_on_sigterm(db: str) -> None:
    """A command stopped (Ctrl-Z, SIGTTIN) would keep a relayed SIGTERM pending forever;
    SIGCONT follows it, as a shell's kill does for a stopped job."""
    proc, directory = start(db, "sh", "-c", "'kill -STOP $$; sleep 60'")
    time.sleep(0.5)  # stopped by now
    proc.send_signal(signal.SIGTERM)
    try:
        proc.communicate(timeout=30)
    finally:
        proc.kill()  # and the command dies with it
        proc.communicate()
    assert proc.returncode == 143
    assert not Path(directory).exists()


@pytest.mark.parametrize("where", ["engine._record_run", "runtime.hostdir.HostProcess"])
def test_an_interrupt_right_after_the_start_leaves_nothing(
    db: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, where: str
) -> None:
    """Ctrl-C before the signal relay knows the command (SignalForwarder raises SystemExit
    then) must still end the command and remove its directory, wherever it lands between
    the start and the hand-over: in-process, an interrupt raised at ``where``."""
    from secretd.config import load_config
    from secretd.engine import Engine
    from secretd.refs import parse_refs
    from secretd.spec import RunSpec

    marker, chosen = tmp_path / "still-running", SHM / f"secretd-test-{os.getpid()}-int"
    existed: list[bool] = []

    def interrupted(*args: object, **kwargs: object) -> None:
        existed.append(chosen.is_dir())
        raise KeyboardInterrupt

    monkeypatch.setattr(f"secretd.{where}", interrupted)
    spec = RunSpec(
        command=("sh", "-c", f"sleep 2; touch {marker}"), secrets=parse_refs([db], {}, str(chosen)),
        env=tuple(os.environ.items()), runtime="host", secrets_dir=str(chosen),
    )  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        Engine(load_config()).run(spec, stdio=(0, 1, 2))
    assert existed == [True]
    assert not chosen.exists()
    time.sleep(3)
    assert not marker.exists()  # the command was ended, not left running
