"""``secretd run --mount-type fuse`` end to end: the kernel enforces modes, files behave as
regular files, max_reads, rotation at the next open, and bad input refused up front."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from secretd.mount.fuse import FuseMount
from secretd.spec import SecretFile, SecretMount
from tests.conftest import Runner
from tests.fuse.conftest import VALUE, access_log, background_run, fuse_mounts
from tests.support.cli import refused

pytestmark = [pytest.mark.fuse, pytest.mark.root]
NOBODY = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"]


def _run(
    secretd: Runner, value_file: Path, *refs: str, script: str
) -> subprocess.CompletedProcess[str]:
    args = ["run", "--no-daemon", "--mount-type", "fuse"]
    for ref in refs:
        args += ["--secret", ref.replace("SRC", f"file:{value_file}")]
    return secretd(*args, "--", "sh", "-c", script)  # type: ignore[no-any-return]


def test_modes_owners_and_sizes_are_the_kernels_to_enforce(
    secretd: Runner, value_file: Path
) -> None:
    result = _run(
        secretd, value_file,
        "source=SRC,target=root_only,mode=0400",
        "source=SRC,target=nobodys,mode=0400,uid=65534,gid=65534",
        script=(
            "stat -c '%n %s %a %u %g %F' /run/secrets/root_only /run/secrets/nobodys;"
            f"{' '.join(NOBODY)} cat /run/secrets/root_only; echo \"root_only=$?\";"
            f"[ \"$({' '.join(NOBODY)} cat /run/secrets/nobodys)\" = {VALUE} ] && echo same;"
            "mount | grep ' /run/secrets '"
        ),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    size = len(VALUE)
    assert lines[0] == f"/run/secrets/root_only {size} 400 0 0 regular file"
    assert lines[1] == f"/run/secrets/nobodys {size} 400 65534 65534 regular file"
    assert "root_only=1" in lines
    assert "same" in lines
    assert "Permission denied" in result.stderr
    mount = lines[-1]
    assert "fuse.secretd" in mount and "(ro," in mount and "default_permissions" in mount


def test_files_are_re_readable_at_any_offset(secretd: Runner, value_file: Path) -> None:
    probe = (
        "import os, sys; fd = os.open('/run/secrets/k', os.O_RDONLY); v = sys.argv[1].encode();"
        "print(os.pread(fd, 4, 5) == v[5:9], os.pread(fd, 100, 0) == v,"
        " os.read(fd, 100) == v, os.read(fd, 100) == b'', os.fstat(fd).st_size)"
    )
    result = _run(
        secretd, value_file, "source=SRC,target=k", script=f'{sys.executable} -c "{probe}" {VALUE}'
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True", "True", "True", str(len(VALUE))]


def test_max_reads_one_gives_one_read_then_eacces(
    secretd: Runner, value_file: Path, clean_environ: dict[str, Path]
) -> None:
    result = _run(
        secretd, value_file, "source=SRC,target=once,max_reads=1",
        script="wc -c </run/secrets/once; echo \"first=$?\"; cat /run/secrets/once;"
        "echo \"second=$?\"; ls /run/secrets; stat -c %s /run/secrets/once",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    size = str(len(VALUE))
    assert result.stdout.split() == [size, "first=0", "second=1", "once", size]
    assert "/run/secrets/once: Permission denied" in result.stderr
    events = [e["event"] for e in access_log(clean_environ["state"]) if e.get("file") == "once"]
    assert events == ["fuse-open", "fuse-open-refused"]


def test_every_open_is_in_the_access_log_with_pid_and_command_never_a_value(
    secretd: Runner, value_file: Path, clean_environ: dict[str, Path]
) -> None:
    result = _run(
        secretd, value_file, "source=SRC,target=api_key",
        script="cat /run/secrets/api_key >/dev/null; head -c 3 /run/secrets/api_key >/dev/null",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    log_path = clean_environ["state"] / "access.log"
    assert os.stat(log_path).st_mode & 0o777 == 0o600
    assert VALUE.encode() not in log_path.read_bytes()
    events = access_log(clean_environ["state"])
    run = next(e for e in events if e["event"] == "run")
    assert run["mount"] == "fuse" and run["runtime"] == "sandbox"
    assert run["secrets"] == [
        {"name": "api_key", "version": run["secrets"][0]["version"], "kind": "secret"}
    ]  # type: ignore[index]
    opens = [e for e in events if e["event"] == "fuse-open"]
    assert [(e["file"], e["comm"], e["uid"]) for e in opens] == [
        ("api_key", "cat", 0), ("api_key", "head", 0)
    ]  # fmt: skip
    assert all(isinstance(e["pid"], int) and e["pid"] > 1 for e in opens)
    shown = secretd("audit", "log", "--secret", "api_key")
    assert shown.returncode == 0, shown.stderr
    assert "fuse-open file=api_key" in shown.stdout and "comm=head" in shown.stdout
    assert VALUE not in shown.stdout


def test_a_rotated_value_is_read_at_the_next_open_an_open_file_keeps_its_own(
    tmp_path: Path,
) -> None:
    served = FuseMount.create(tmp_path / "rt", SecretMount((SecretFile("k", b"old-value"),), 0))
    try:
        path = served.secrets_path / "k"
        with open(path, "rb") as before:
            served.update((SecretFile("k", b"the-new-value"),))
            with open(path, "rb") as after:
                assert after.read() == b"the-new-value"
            assert before.read() == b"old-value"
        assert os.stat(path).st_size in (len(b"old-value"), len(b"the-new-value"))  # attr cache
    finally:
        served.remove()
    assert not served.path.exists()
    assert fuse_mounts(tmp_path) == []


@pytest.mark.parametrize(
    ("ref", "extra", "message"),
    [
        ("source=SRC,target=k,max_reads=0", ["--mount-type", "fuse"], "invalid max_reads '0'"),
        ("source=SRC,target=k,max_reads=x", ["--mount-type", "fuse"], "invalid max_reads 'x'"),
        ("source=SRC,target=k,max_reads=2", [], "max_reads= of 'k' needs a FUSE mount"),
        (
            "source=SRC,target=k",
            ["--mount-type", "fuse", "--no-sandbox"],
            "--mount-type fuse needs the sandbox or a container",
        ),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_starts(
    secretd: Runner, value_file: Path, tmp_path: Path, ref: str, extra: list[str], message: str
) -> None:
    marker = tmp_path / "started"
    result = secretd(
        "run", "--no-daemon", *extra, "--secret", ref.replace("SRC", f"file:{value_file}"),
        "--", "touch", str(marker),
    )  # fmt: skip
    refused(result, 2, message)
    assert not marker.exists()


def test_fuse_with_detach_is_refused(secretd: Runner, value_file: Path) -> None:
    result = secretd(
        "run", "--no-daemon", "--mount-type", "fuse", "-d", "--secret",
        f"k=file:{value_file}", "busybox:local", "true",
    )  # fmt: skip
    assert result.returncode == 2
    assert "--mount-type fuse serves files only while this secretd runs" in result.stderr


def test_without_libfuse_one_line_exit_125_and_nothing_starts(
    secretd: Runner, value_file: Path, tmp_path: Path, clean_environ: dict[str, Path]
) -> None:
    marker = tmp_path / "started"
    env = dict(os.environ, FUSE_LIBRARY_PATH="/nonexistent/libfuse.so.2")
    result = secretd(
        "run", "--no-daemon", "--mount-type", "fuse", "--secret", f"k=file:{value_file}",
        "--", "touch", str(marker), env=env,
    )  # fmt: skip
    assert result.returncode == 125, result.stderr
    assert "libfuse 2 or fusepy is not installed" in result.stderr
    assert "apt-get install fuse3 libfuse2" in result.stderr
    assert not marker.exists()
    assert not (clean_environ["runtime"] / "mounts").exists() or not any(
        (clean_environ["runtime"] / "mounts").iterdir()
    )


def test_without_dev_fuse_one_line_exit_125(
    secretd: Runner, value_file: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "started"
    hide = 'mount -t tmpfs none /dev && mknod -m 666 /dev/null c 1 3 && exec "$@"'
    result = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", hide, "sh",
         sys.executable, "-m", "secretd", "run", "--no-daemon", "--mount-type", "fuse",
         "--secret", f"k=file:{value_file}", "--", "touch", str(marker)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 125, result.stderr
    assert result.stderr.strip() == (
        "secretd: cannot use --mount-type fuse: /dev/fuse is missing: install FUSE: "
        "apt-get install fuse3 libfuse2 (and load the fuse module)"
    )
    assert not marker.exists()


def test_no_process_of_the_command_holds_dev_fuse(secretd: Runner, value_file: Path) -> None:
    """libfuse 2 opens /dev/fuse without O_CLOEXEC: a command inheriting it could read the
    filesystem's requests and answer them itself."""
    result = _run(
        secretd, value_file, "source=SRC,target=k",
        script="for p in /proc/[0-9]*; do ls -l $p/fd; done 2>/dev/null | grep -c /dev/fuse",
    )  # fmt: skip
    assert result.stdout.strip() == "0", result.stderr


def test_prune_unmounts_what_a_killed_secretd_left(
    secretd: Runner, value_file: Path, tmp_path: Path, clean_environ: dict[str, Path]
) -> None:
    ready = tmp_path / "ready"
    with background_run(
        ready, "--no-daemon", "--mount-type", "fuse", "--secret", f"k=file:{value_file}",
        "--", "sh", "-c", f"touch {ready}; sleep 300",
    ) as proc:  # fmt: skip
        (left,) = fuse_mounts(clean_environ["runtime"])
        proc.kill()  # SIGKILL: secretd cannot take its mount down
        proc.wait(15)
    assert fuse_mounts(clean_environ["runtime"]) == [left]
    pruned = secretd("prune")
    assert pruned.returncode == 0, pruned.stderr
    assert pruned.stdout == f"Removed secrets mounts:\n{Path(left).name}\n"
    assert fuse_mounts(clean_environ["runtime"]) == [] and not Path(left).exists()


def test_no_change_to_a_secret_even_by_root_on_the_host_side(tmp_path: Path) -> None:
    served = FuseMount.create(tmp_path / "rt", SecretMount((SecretFile("k", b"value"),), 0))
    path = str(served.secrets_path / "k")
    changes = {
        "write": lambda: os.open(path, os.O_WRONLY),
        "truncate": lambda: os.truncate(path, 0),
        "unlink": lambda: os.unlink(path),
        "rename": lambda: os.rename(path, path + ".2"),
        "chmod": lambda: os.chmod(path, 0o666),
        "chown": lambda: os.chown(path, 65534, 65534),
        "utime": lambda: os.utime(path, (1, 1)),
        "mkdir": lambda: os.mkdir(path + ".d"),
        "symlink": lambda: os.symlink("/etc/shadow", path + ".l"),
    }
    try:
        refused = {}
        for name, change in changes.items():
            with pytest.raises(OSError) as caught:
                change()
            refused[name] = caught.value.errno
        assert refused == dict.fromkeys(changes, errno.EROFS)
        with pytest.raises(PermissionError):  # a new file only at the root, the notes' place
            os.open(str(served.secrets_path / "new"), os.O_CREAT | os.O_WRONLY, 0o600)
        note = served.path / "owner.json"
        note.write_text("{}")  # what an engine writes: the serving uid's
        assert note.read_text() == "{}"
        with open(path, "rb") as fh:
            assert fh.read() == b"value"
    finally:
        served.remove()


def test_large_binary_and_empty_values_read_back_exactly(tmp_path: Path) -> None:
    big = os.urandom(1 << 20) + b"\0\xff"
    files = (SecretFile("big", big), SecretFile("empty", b""))
    served = FuseMount.create(tmp_path / "rt", SecretMount(files, 0))
    try:
        probe = (
            "import os, sys; d = sys.argv[1];"
            "sys.stdout.buffer.write(open(d + '/big', 'rb').read());"
            "assert open(d + '/empty', 'rb').read() == b'' and os.stat(d + '/empty').st_size == 0"
        )
        read = subprocess.run(
            [sys.executable, "-c", probe, str(served.secrets_path)], capture_output=True, check=True
        )
        assert read.stdout == big
        assert os.stat(served.secrets_path / "big").st_size == len(big)
    finally:
        served.remove()
