"""What a command sees at /run/secrets: files, owners, modes, and the mount itself."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from .conftest import CANARY, host_secretd_mounts, sleeper, start_run, wait_gone

pytestmark = pytest.mark.root


def test_file_content_and_swarm_defaults(secretd, secret_file) -> None:
    path = secret_file("s3cr3t")
    result = secretd(
        "run",
        "--secret",
        f"api_key=file:{path}",
        "--",
        "sh",
        "-c",
        "cat /run/secrets/api_key; echo; stat -c '%a %u %g %F' /run/secrets/api_key",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["s3cr3t", "444 0 0 regular file"]


def test_long_syntax_sets_target_owner_and_mode(secretd, secret_file) -> None:
    path = secret_file("k")
    ref = f"source=file:{path},target=app/tls.key,uid=1000,gid=1001,mode=0400"
    result = secretd(
        "run", "--secret", ref, "--", "stat", "-c", "%a %u %g %n", "/run/secrets/app/tls.key"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "400 1000 1001 /run/secrets/app/tls.key"


def test_binary_value_is_byte_exact(secretd, secret_file, tmp_path: Path) -> None:
    value = bytes(range(256)) * 4
    path = secret_file(value)
    out = tmp_path / "copy"
    result = secretd(
        "run", "--secret", f"blob=file:{path}", "--", "cp", "/run/secrets/blob", str(out)
    )
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == value


def test_mount_is_tmpfs_noswap_readonly(secretd, secret_file) -> None:
    path = secret_file("x")
    result = secretd("run", "--secret", f"a=file:{path}", "--", "cat", "/proc/self/mounts")
    lines = [
        line.split() for line in result.stdout.splitlines() if line.split()[1] == "/run/secrets"
    ]
    device, _, fstype, options = lines[-1][:4]
    assert fstype == "tmpfs"
    assert {"ro", "nosuid", "nodev", "noexec", "noswap"} <= set(options.split(","))


def test_write_inside_fails_with_erofs(secretd, secret_file) -> None:
    path = secret_file("x")
    script = "import os\ntry:\n open('/run/secrets/a','w')\nexcept OSError as e:\n print(e.errno)"
    result = secretd("run", "--secret", f"a=file:{path}", "--", sys.executable, "-c", script)
    assert result.stdout.strip() == str(__import__("errno").EROFS)


def test_only_requested_secrets_are_present(secretd, secret_file) -> None:
    a, b = secret_file("1", "a"), secret_file("2", "b")
    result = secretd(
        "run",
        "--secret",
        f"one=file:{a}",
        "--secret",
        f"two=file:{b}",
        "--",
        "ls",
        "-A",
        "/run/secrets",
    )
    assert result.stdout.split() == ["one", "two"]


def test_absolute_target_lands_only_inside_the_sandbox(secretd, secret_file, tmp_path) -> None:
    path = secret_file("abs-value")
    target = tmp_path / "etc-app" / "key.pem"
    result = secretd(
        "run",
        "--secret",
        f"source=file:{path},target={target},mode=0440",
        "--",
        "sh",
        "-c",
        f"cat {target}; echo; stat -c '%a' {target}",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["abs-value", "440"]
    assert not target.exists() and not target.parent.exists()


def test_host_sees_nothing_during_the_run(secretd, secret_file, tmp_path: Path) -> None:
    path = secret_file(CANARY)
    ready = tmp_path / "ready"
    before = sorted(os.listdir("/run/secrets")) if os.path.isdir("/run/secrets") else None
    command = f"touch {ready}; sleep 30"
    proc = start_run(ready, "--secret", f"c=file:{path}", "--", "sh", "-c", command)
    try:
        after = sorted(os.listdir("/run/secrets")) if os.path.isdir("/run/secrets") else None
        assert after == before
        assert host_secretd_mounts() == []
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 143


def test_nothing_left_after_secretd_is_killed(secretd, secret_file, tmp_path: Path) -> None:
    path = secret_file(CANARY)
    ready = tmp_path / "ready"
    sleep, marker = sleeper(30)
    command = f"touch {ready}; exec {sleep}"
    proc = start_run(ready, "--secret", f"c=file:{path}", "--", "sh", "-c", command)
    proc.kill()
    proc.wait(timeout=5)
    assert wait_gone(marker) == [], "the command outlived secretd"
    assert host_secretd_mounts() == []


def test_file_env_points_at_each_file(secretd, secret_file) -> None:
    path = secret_file("pw")
    result = secretd(
        "run",
        "--file-env",
        "--secret",
        f"db_password=file:{path}",
        "--",
        "sh",
        "-c",
        'cat "$DB_PASSWORD_FILE"; echo " $DB_PASSWORD_FILE"',
    )
    assert result.stdout.strip() == "pw /run/secrets/db_password"


def test_user_flag_drops_privileges(secretd, secret_file) -> None:
    path = secret_file("x")
    result = secretd(
        "run",
        "-u",
        "65534:65534",
        "--secret",
        f"source=file:{path},target=k,uid=65534,mode=0400",
        "--",
        "sh",
        "-c",
        "id -u; id -g; cat /run/secrets/k",
    )
    assert result.stdout.split() == ["65534", "65534", "x"]


def test_env_secrets_and_broker_credentials_stay_out_of_the_environment(
    secretd, monkeypatch
) -> None:
    monkeypatch.setenv("DB_PASSWORD", "moved-to-a-file")
    monkeypatch.setenv("VAULT_TOKEN", "broker-token")
    monkeypatch.setenv("SECRETD_PASSPHRASE", "store-passphrase")
    monkeypatch.setenv("MODE", "kept")
    result = secretd(
        "run",
        "--secret",
        "db=env:DB_PASSWORD",
        "--",
        "sh",
        "-c",
        'cat /run/secrets/db; echo; echo "${DB_PASSWORD:-unset} ${VAULT_TOKEN:-unset} '
        '${SECRETD_PASSPHRASE:-unset} $MODE"',
    )
    assert result.stdout.splitlines() == ["moved-to-a-file", "unset unset unset kept"]
