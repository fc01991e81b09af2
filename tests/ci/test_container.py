"""secretd inside a real Docker container without CAP_SYS_ADMIN, as a GitLab docker
executor or a GitHub ``container:`` job runs it: Docker's seccomp profile refuses
``unshare``, so the sandbox is refused, and a CI job falls back to a directory on the
container's /dev/shm. The checkout, its venv and the host's /usr are bound read-only into
a busybox container (tests/ci/conftest.py)."""

from __future__ import annotations

import hashlib
import subprocess

import pytest

from tests.ci.container import ROOT, SECRETD, in_job
from tests.support.dockerd import IMAGE, Dockerd

VALUE = "db-password-in-ci-4f1e"
COMMAND = f"""{SECRETD} run --secret db=env:DB -- sh -c 'cat "$DB_FILE"'"""
# The value's digest, not the value: in CI secretd redacts what the command prints.
DIGEST = f"""{SECRETD} run --secret db=env:DB -- sh -c 'cat "$DB_FILE" | md5sum'"""
NOTICE = "secretd: warning: cannot set up the sandbox: unshare: Operation not permitted (namespaces and mounts are not allowed here"  # noqa: E501

pytestmark = pytest.mark.docker


def shm(dockerd: Dockerd, job: str) -> list[str]:
    return in_job(dockerd, job, "ls -A /dev/shm").stdout.split()


def test_the_sandbox_is_refused_with_the_ways_out(dockerd: Dockerd, job: str) -> None:
    result = in_job(dockerd, job, COMMAND, {"DB": VALUE})
    assert result.returncode == 125
    assert result.stdout == ""
    assert result.stderr.startswith(
        "secretd: cannot set up the sandbox: unshare: Operation not permitted (namespaces "
        "and mounts are not allowed here: a container without CAP_SYS_ADMIN"
    )
    assert "run with --no-sandbox" in result.stderr
    assert "--cap-add SYS_ADMIN" in result.stderr
    assert result.stderr.count("\n") == 1
    assert shm(dockerd, job) == []


@pytest.mark.parametrize("user", ["0", "1000"])
def test_ci_falls_back_with_one_notice(dockerd: Dockerd, job: str, user: str) -> None:
    script = DIGEST + '; ls -A /dev/shm'
    result = in_job(dockerd, job, script, {"DB": VALUE, "CI": "true"}, user)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{hashlib.md5(VALUE.encode()).hexdigest()}  -\n"  # nothing left
    assert result.stderr.startswith(NOTICE)
    assert result.stderr.count("\n") == 1
    assert VALUE not in result.stderr


def test_gitlab_job_log_shows_the_value_masked(dockerd: Dockerd, job: str) -> None:
    """The issue's command as written, in a GitLab job: it reads the file (its digest above
    shows the value is there), and what it prints reaches the log as [MASKED]."""
    result = in_job(dockerd, job, COMMAND, {"DB": VALUE, "CI": "true", "GITLAB_CI": "true"})
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[MASKED]"
    assert result.stderr.startswith(NOTICE) and VALUE not in result.stderr


def test_github_masks_each_line_before_output(dockerd: Dockerd, job: str) -> None:
    env = {"DB": "first-line-x1\nsecond-line-y2", "CI": "true", "GITHUB_ACTIONS": "true"}
    result = in_job(dockerd, job, f"{SECRETD} run --secret db=env:DB -- echo started", env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "::add-mask::first-line-x1\n::add-mask::second-line-y2\nstarted\n"
    )


BACKGROUND = f"""
rm -f /tmp/out /tmp/err
{SECRETD} run --secret db=env:DB -- sh -c 'echo "$DB_FILE"; exec sleep 60' >/tmp/out 2>/tmp/err &
pid=$!
while [ ! -s /tmp/out ]; do sleep 0.1; done
echo "during: $(ls -A /dev/shm)"
kill -{{signal}} $pid
wait $pid
echo "status: $?"
n=0
while [ -n "$(ls -A /dev/shm)" ] && [ $n -lt 100 ]; do sleep 0.1; n=$((n+1)); done
echo "after: $(ls -A /dev/shm)"
ps -o stat,args | grep -cE "^[^Z][^ ]* +sleep 60$"
"""


@pytest.mark.parametrize(("signal", "status"), [("TERM", 143), ("KILL", 137)])
def test_nothing_is_left_after_a_signal(
    dockerd: Dockerd, job: str, signal: str, status: int
) -> None:
    """SIGTERM: relayed to the command, then the directory removed; SIGKILL: the watchdog
    removes it and the command dies with secretd."""
    script = BACKGROUND.replace("{signal}", signal)
    result = in_job(dockerd, job, script, {"DB": VALUE, "CI": "true"})
    during, got, after, sleepers = result.stdout.splitlines()
    assert during.startswith("during: secretd-")
    assert got == f"status: {status}"
    assert after == "after: "
    assert sleepers == "0"  # none alive (a zombie left to PID 1, which reaps none, is dead)


@pytest.mark.parametrize(
    "options",
    [
        ["--user", "1000", "--security-opt", "seccomp=unconfined"],  # a user namespace, no /proc
        ["--cap-drop", "ALL"],
    ],
)
def test_other_refusals_fall_back_too(dockerd: Dockerd, options: list[str]) -> None:
    """Where unshare works but mounting does not (a container's masked /proc refuses a new
    one in a user namespace, as Ubuntu's AppArmor rule refuses mounts), it is a refusal too."""
    binds = ["/usr:/usr:ro", "/lib:/lib:ro", "/lib64:/lib64:ro", f"{ROOT}:{ROOT}:ro"]
    result = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", *options,
         *[arg for bind in binds for arg in ("-v", bind)],
         "-e", "SECRETD_STATE_DIR=/tmp/state", "-e", "SECRETD_RUNTIME_DIR=/tmp/run",
         "-e", "HOME=/tmp", "-e", f"DB={VALUE}", "-e", "CI=true", IMAGE, "sh", "-c", DIGEST],
        env=dockerd.env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{hashlib.md5(VALUE.encode()).hexdigest()}  -\n"
    assert "cannot set up the sandbox" in result.stderr and result.stderr.count("\n") == 1
