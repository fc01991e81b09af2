"""``secretd run IMAGE``: secrets inside a real runc container, Docker's run semantics."""

from __future__ import annotations

import os
import pty
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Runner
from tests.oci.conftest import mounts_under, run_ok
from tests.support import busybox

pytestmark = [pytest.mark.runc, pytest.mark.root]

Secret = Callable[[str, str], str]


def test_the_done_criterion_with_the_local_store(secretd: Runner, image: str) -> None:
    created = secretd("secret", "create", "api_key", "-", input="s3cr3t-api-key")
    assert created.returncode == 0, created.stderr
    result = secretd("run", "--rm", "--secret", "api_key", image, "cat", "/run/secrets/api_key")
    assert (result.returncode, result.stdout) == (0, "s3cr3t-api-key")
    assert "s3cr3t" not in result.stderr


def test_files_modes_owners_and_a_read_only_tmpfs(
    secretd: Runner, image: str, secret: Secret
) -> None:
    db, cert = secret("db", "v2").partition("=")[2], secret("cert", "v3").partition("=")[2]
    out = run_ok(
        secretd, "run", "--rm",
        "--secret", secret("api_key", "v1"),
        "--secret", f"source={db},target=db.pass,mode=0400,uid=1000,gid=1000",
        "--secret", f"source={cert},target=/etc/app/cert",
        image, "sh", "-c",
        "cd /run/secrets; stat -c '%n %a %u %g' api_key db.pass /etc/app/cert;"
        "cat api_key db.pass /etc/app/cert; echo;"
        "grep -E ' /run/secrets | /etc/app ' /proc/mounts | cut -d' ' -f2-4;"
        "(echo x > /run/secrets/new) 2>&1; (echo x > /etc/app/cert) 2>&1; true",
    )
    lines = out.splitlines()
    assert lines[:4] == ["api_key 444 0 0", "db.pass 400 1000 1000", "/etc/app/cert 444 0 0",
                         "v1v2v3"]
    assert lines[4].startswith("/run/secrets tmpfs ro,nosuid,nodev,noexec")
    # the image has no /etc/app: bound whole, so a replaced file is seen (docs/configs.md)
    assert lines[5].startswith("/etc/app tmpfs ro,nosuid,nodev,noexec")
    assert "noswap" in lines[4]
    assert lines[6:] == ["sh: can't create /run/secrets/new: Read-only file system",
                         "sh: can't create /etc/app/cert: Read-only file system"]


def test_owners_and_modes_are_enforced_inside(secretd: Runner, image: str, secret: Secret) -> None:
    ref = f"source={secret('k', 'v').partition('=')[2]},target=k,mode=0400,uid=1000"
    assert run_ok(secretd, "run", "--rm", "-u", "app", "--secret", ref, image,
                  "cat", "/run/secrets/k") == "v"
    result = secretd("run", "--rm", "-u", "nobody", "--secret", ref, image,
                     "cat", "/run/secrets/k")
    assert result.returncode == 1
    assert "Permission denied" in result.stderr


def test_the_host_tmpfs_lives_only_as_long_as_the_container(
    secretd: Runner, image: str, secret: Secret, clean_environ: dict[str, Path]
) -> None:
    runtime, state = clean_environ["runtime"], clean_environ["state"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "secretd", "run", "--rm", "-i", "--secret",
         secret("api_key", "v"), image, "sh", "-c", "echo ready; read line"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        during = mounts_under(runtime / "mounts")
        assert len(during) == 1
        assert not os.path.exists("/run/secrets/api_key")  # the host's own view is untouched
    finally:
        proc.communicate("done\n", timeout=30)
    assert proc.returncode == 0
    assert mounts_under(runtime) == [] and mounts_under(state) == []
    assert list((runtime / "mounts").iterdir()) == []
    assert [p for p in (state / "containers").iterdir() if not p.name.startswith(".")] == []


def test_the_images_own_run_content_is_intact(
    secretd: Runner, image: str, secret: Secret, clean_environ: dict[str, Path]
) -> None:
    out = run_ok(secretd, "run", "--rm", "--secret", secret("api_key", "v"), image,
                 "sh", "-c", "ls /run; cat /run/image-owned")
    assert out == "image-owned\nsecrets\nthis file belongs to the image\n"
    (layer,) = (clean_environ["state"] / "images" / "layers").iterdir()
    assert sorted(p.name for p in (layer / "run").iterdir()) == ["image-owned"]


@pytest.fixture
def configured(secretd: Runner, tmp_path: Path, rootfs_layer: Path) -> str:
    """An image whose config sets Entrypoint, Cmd, Env, WorkingDir and User."""
    config = {
        "Env": [busybox.PATH_ENV, "GREETING=hello", "KEEP=image"],
        "Entrypoint": ["/bin/echo", "ep"],
        "Cmd": ["default-cmd"],
        "WorkingDir": "/home/app",
        "User": "app",
    }
    archive = busybox.docker_archive(tmp_path / "cfg.tar", [rootfs_layer], config=config,
                                     repo_tag="cfg:1")
    run_ok(secretd, "image", "load", "-i", str(archive))
    return "cfg:1"


def test_entrypoint_and_cmd_merge_as_in_docker(secretd: Runner, configured: str) -> None:
    assert run_ok(secretd, "run", "--rm", configured) == "ep default-cmd\n"
    assert run_ok(secretd, "run", "--rm", configured, "x", "y") == "ep x y\n"
    assert run_ok(secretd, "run", "--rm", "--entrypoint", "pwd", configured) == "/home/app\n"
    result = secretd("run", "--rm", "--entrypoint", "", configured)
    assert result.returncode == 2
    assert "the image has no Entrypoint or Cmd and no command was given" in result.stderr


def test_env_user_and_workdir_from_the_image_and_the_flags(
    secretd: Runner, configured: str
) -> None:
    script = "id; pwd; echo $GREETING $KEEP $HOME"
    out = run_ok(secretd, "run", "--rm", "-e", "GREETING=bye", "--entrypoint", "sh",
                 configured, "-c", script)
    assert out == "uid=1000(app) gid=1000(app)\n/home/app\nbye image /home/app\n"
    out = run_ok(secretd, "run", "--rm", "-u", "0", "-w", "/tmp/new/dir", "--entrypoint", "sh",
                 configured, "-c", script)
    assert out == "uid=0(root) gid=0(root)\n/tmp/new/dir\nhello image /root\n"
    out = run_ok(secretd, "run", "--rm", "-u", "4242", "--entrypoint", "id", configured)
    assert out == "uid=4242 gid=0(root)\n"
    out = run_ok(secretd, "run", "--rm", "-u", "app:nogroup", "--entrypoint", "id", configured)
    assert out == "uid=1000(app) gid=65534(nogroup)\n"
    result = secretd("run", "--rm", "-u", "ghost", configured)
    assert result.returncode == 2
    assert "unable to find user ghost: no matching entries in passwd file" in result.stderr


def test_volumes(secretd: Runner, image: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "in").write_text("from host")
    out = run_ok(secretd, "run", "--rm", "-v", f"{data}:/data:ro", image, "sh", "-c",
                 "cat /data/in; echo; touch /data/x 2>&1; true")
    assert out == "from host\ntouch: /data/x: Read-only file system\n"
    run_ok(secretd, "run", "--rm", "-v", f"{data}:/data", image, "sh", "-c", "echo hi > /data/out")
    assert (data / "out").read_text() == "hi\n"
    result = secretd("run", "--rm", "-v", "named:/data", image, "true")
    assert result.returncode == 2 and "named volumes need an engine" in result.stderr


def test_read_only_root_network_and_hostname(secretd: Runner, image: str) -> None:
    out = run_ok(secretd, "run", "--rm", "--read-only", "--hostname", "box", image, "sh", "-c",
                 "hostname; touch /x 2>&1; ls /sys/class/net")
    assert out == "box\ntouch: /x: Read-only file system\nlo\n"
    # The host's virtual interfaces come and go while the test runs (other containers'
    # veths, swarm's bridges), so the container's list is not compared whole: it is in the
    # host's network namespace and sees the host's devices (eth0, not only lo).
    devices = {name for name in os.listdir("/sys/class/net")
               if os.path.exists(f"/sys/class/net/{name}/device")}
    out = run_ok(secretd, "run", "--rm", "--network", "host", image, "sh", "-c",
                 "readlink /proc/self/ns/net; ls /sys/class/net")
    namespace, *seen = out.split()
    assert namespace == os.readlink("/proc/self/ns/net")
    assert "lo" in seen and devices <= set(seen)
    result = secretd("run", "--rm", "--network", "bridge", image, "true")
    assert result.returncode == 2 and "the oci runtime knows none and host" in result.stderr


def test_host_network_brings_name_resolution(secretd: Runner, image: str) -> None:
    script = "cat /etc/resolv.conf; echo ---; cat /etc/hosts; (echo x >> /etc/hosts) 2>&1; true"
    out = run_ok(secretd, "run", "--rm", "--network", "host", image, "sh", "-c", script)
    resolv, hosts = out.split("---\n")
    assert resolv == Path("/etc/resolv.conf").read_text()
    assert hosts.startswith(Path("/etc/hosts").read_text())
    assert hosts.endswith("Read-only file system\n")
    isolated = run_ok(secretd, "run", "--rm", image, "ls", "/etc")
    assert "resolv.conf" not in isolated.split()


def test_own_network_has_hosts_and_hostname(secretd: Runner, image: str) -> None:
    script = "cat /etc/hostname; ping -c1 -W1 localhost >/dev/null && echo pong; cat /etc/hosts"
    out = run_ok(secretd, "run", "--rm", "--hostname", "box", image, "sh", "-c", script)
    lines = out.splitlines()
    assert lines[:2] == ["box", "pong"]
    assert "127.0.0.1\tlocalhost box" in lines


def test_dockers_default_confinement(secretd: Runner, image: str) -> None:
    out = run_ok(secretd, "run", "--rm", image, "sh", "-c",
                 "grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status;"
                 "grep -c . /proc/keys; grep -E ' /proc/(sys|bus) ' /proc/mounts | cut -d' ' -f4")
    lines = out.splitlines()
    assert lines[:3] == ["CapEff:\t00000000a80425fb", "CapBnd:\t00000000a80425fb",
                         "NoNewPrivs:\t1"]
    assert lines[3] == "0"  # /proc/keys masked
    assert [line.split(",")[0] for line in lines[4:]] == ["ro", "ro"]
    out = run_ok(secretd, "run", "--rm", "-u", "app", image, "grep", "^CapEff", "/proc/self/status")
    assert out == "CapEff:\t0000000000000000\n"


@pytest.mark.parametrize(("command", "status", "message"), [
    (["true"], 0, ""),
    (["sh", "-c", "exit 3"], 3, ""),
    (["no-such-command"], 127,
     "secretd: cannot run 'no-such-command': command not found: check PATH or the name\n"),
    (["/etc/passwd"], 126, "secretd: cannot run '/etc/passwd': Permission denied\n"),
])
def test_exit_codes(
    secretd: Runner, image: str, command: list[str], status: int, message: str
) -> None:
    result = secretd("run", "--rm", image, *command)
    assert (result.returncode, result.stderr) == (status, message)


def wait_for_init(state: Path, command: str, catching: int = 0) -> None:
    """Until the container's pid 1 is ``command`` (and catches signal ``catching``), so a
    signal reaches the process the test means, not a shell on its way to exec it."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for pid_file in state.glob("containers/*/pid"):
            proc = Path(f"/proc/{pid_file.read_text().strip() or 0}")
            try:
                argv0 = (proc / "cmdline").read_bytes().split(b"\0")[0]
                status = (proc / "status").read_text()
            except OSError:
                continue
            caught = int(status.split("SigCgt:")[1].split()[0], 16)
            if argv0 == command.encode() and (not catching or caught >> (catching - 1) & 1):
                return
        time.sleep(0.02)
    raise AssertionError(f"the container never ran {command}")


@pytest.mark.parametrize(("sent", "command", "status"), [
    (signal.SIGTERM, ["sleep", "60"], 143),
    (signal.SIGINT, ["sleep", "60"], 130),
    (signal.SIGTERM, ["sh", "-c", "trap 'echo caught; exit 7' TERM; sleep 60 & wait"], 7),
])
def test_signals_reach_the_container(
    image: str, clean_environ: dict[str, Path],
    sent: signal.Signals, command: list[str], status: int,
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "secretd", "run", "--rm", image, *command],
        stdout=subprocess.PIPE, text=True,
    )
    wait_for_init(clean_environ["state"], command[0], sent if status == 7 else 0)
    proc.send_signal(sent)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == status
    assert out == ("caught\n" if status == 7 else "")
    assert mounts_under(clean_environ["runtime"]) == []


def test_a_window_size_change_does_not_end_the_container(
    image: str, clean_environ: dict[str, Path]
) -> None:
    """SIGWINCH does nothing by default: a pid 1 that leaves it alone must not be killed
    the way one that leaves SIGTERM alone is."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "secretd", "run", "--rm", image, "sleep", "1"],
        stdout=subprocess.PIPE, text=True,
    )
    wait_for_init(clean_environ["state"], "sleep")
    proc.send_signal(signal.SIGWINCH)
    proc.communicate(timeout=30)
    assert proc.returncode == 0


def test_a_terminal_with_t(image: str) -> None:
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "secretd", "run", "--rm", "-t", image, "sh", "-c",
         "tty; test -t 1 && echo is-a-tty; exit 5"],
        stdin=terminal, stdout=terminal, stderr=terminal, start_new_session=True,
    )
    os.close(terminal)
    assert proc.wait(timeout=30) == 5
    output = b""
    try:
        while chunk := os.read(controller, 4096):
            output += chunk
    except OSError:
        pass  # EIO: the terminal's last user is gone
    os.close(controller)
    assert output.replace(b"\r", b"").splitlines() == [b"/dev/pts/0", b"is-a-tty"]
