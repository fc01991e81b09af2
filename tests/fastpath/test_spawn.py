"""The sandbox started by the compiled helper (``runtime/spawn.c`` through
``posix_spawn``) and by the fork it replaces give the same runs: same output, same
errors, same exit status; and with the helper built, it is the one used."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from secretd.runtime import spawn

FORKED = """
import sys
from secretd.runtime import spawn
spawn.HELPER = spawn.HELPER.with_name("no-such-helper")  # as on a host that has none
sys.argv = ["secretd", *sys.argv[1:]]
from secretd.cli import main
main()
"""
DEEP = f"/opt/secretd-spawn-{os.getpid()}/a/b"
CASES = [
    ["--secret", "api_key", "--", "sh", "-c", "wc -c </run/secrets/api_key; echo $$; exit 3"],
    ["--", "no-such-command-spawn"],
    ["--", "/etc/passwd"],
    ["--secret", f"source=api_key,target={DEEP}/key", "--", "sh", "-c", f"wc -c <{DEEP}/key"],
    ["--workdir", "/no/such/dir", "--", "true"],
    ["-u", "nobody", "--", "sh", "-c", "id -u; cat /run/secrets/api_key"],
    ["--secret", "api_key", "--", "sh", "-c", "touch /run/secrets/x"],
]

pytestmark = pytest.mark.skipif(spawn.helper() is None, reason="secretd-spawn not built")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("spawn")
    made = {k: v for k, v in os.environ.items() if not k.startswith("SECRETD_")}
    made |= {"SECRETD_STATE_DIR": f"{root}/state", "SECRETD_RUNTIME_DIR": f"{root}/run"}
    subprocess.run(
        [sys.executable, "-m", "secretd", "secret", "create", "api_key", "-"],
        input=b"spawn-value", env=made, check=True, capture_output=True,
    )  # fmt: skip
    return made


@pytest.mark.parametrize("args", CASES, ids=lambda args: " ".join(args)[-40:])
def test_spawned_and_forked_runs_agree(env: dict[str, str], args: list[str]) -> None:
    run = ["run", "--no-daemon", "--no-redact", *args]
    spawned = subprocess.run(
        [sys.executable, "-m", "secretd", *run], env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    forked = subprocess.run(
        [sys.executable, "-c", FORKED, *run], env=env, capture_output=True, text=True, timeout=60
    )
    assert (spawned.returncode, spawned.stdout, spawned.stderr) == (
        forked.returncode, forked.stdout, forked.stderr,
    )  # fmt: skip
    assert not Path(DEEP).parent.parent.exists()  # mount points never made on the host


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_the_helper_is_what_starts_the_sandbox(env: dict[str, str], tmp_path: Path) -> None:
    trace = tmp_path / "trace"
    argv = [sys.executable, "-m", "secretd", "run", "--no-daemon", "--", "true"]
    strace = ["strace", "-f", "-qq", "-e", "trace=execve", "-o", str(trace)]
    assert subprocess.run([*strace, *argv], env=env, timeout=60).returncode == 0
    assert f'execve("{spawn.HELPER}"' in trace.read_text()
