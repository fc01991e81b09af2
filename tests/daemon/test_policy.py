"""An unprivileged caller gets what the policy grants, as itself, and nothing else."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from secretd import protocol
from secretd.spec import RunSpec

from .conftest import CANARY, DB_PASSWORD, NOBODY, Daemon, World, call, client, raw_run, wait_for

pytestmark = pytest.mark.root


def denials(daemon: Daemon) -> list[str]:
    return [str(e["msg"]) for e in daemon.events() if e["level"] == "warning"]


def test_granted_secret_reaches_an_unprivileged_caller(world: World, daemon: Daemon) -> None:
    script = "id -u; id -g; stat -c '%a %u %g' /run/secrets/api_key; cat /run/secrets/api_key"
    result = client(world, "run", "--secret", "api_key", "--", "sh", "-c", script, user=NOBODY)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["65534", "65534", "444 65534 65534", CANARY]
    # the file source is root's: nobody could not have read it without the daemon
    assert (world.root / "api_key.txt").stat().st_mode & 0o777 == 0o600


def test_secret_outside_the_policy_is_refused_and_nothing_starts(
    world: World, daemon: Daemon
) -> None:
    marker = world.root / "started"
    result = client(
        world,
        "run",
        "--secret",
        "api_key",
        "--secret",
        "db_password",
        "--",
        "touch",
        str(marker),
        user=NOBODY,
    )
    assert result.returncode == 125
    assert result.stderr == (
        f"secretd: policy in {world.config} does not grant uid 65534 (nobody) the secret "
        "'db_password': ask an administrator to grant it in a [[policy.rules]] entry of the "
        "daemon's config\n"
    )
    assert not marker.exists()
    assert DB_PASSWORD not in result.stdout + result.stderr
    (denial,) = denials(daemon)
    assert re.fullmatch(r"denied uid=65534 user=nobody pid=\d+ request='db_password'", denial)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--secret", "x=file:db_password.txt"],
            "lets only root use explicit sources such as file: (secret 'x')",
        ),
        (
            ["--secret", "api_key=db_password"],
            "does not grant uid 65534 (nobody) the secret 'db_password'",
        ),
        (["--secret", "source=api_key,target=/etc/motd"], "only root may mount secrets outside"),
        (["--secrets-dir", "/etc"], "only root may mount secrets outside /run/secrets"),
        (["-u", "root"], "does not allow uid 65534 (nobody) to use --user root"),
        (["--secret", "source=api_key,uid=0"], "does not allow uid 65534 (nobody) to use uid/gid"),
    ],
)
def test_caller_cannot_escape_the_policy(
    world: World, daemon: Daemon, args: list[str], message: str
) -> None:
    result = client(world, "run", *args, "--", "cat", "/run/secrets/x", user=NOBODY)
    assert result.returncode == 125, result.stderr
    assert message in result.stderr
    assert DB_PASSWORD not in result.stdout


def test_env_references_are_refused_with_a_reason(world: World, daemon: Daemon) -> None:
    """What a client that speaks the protocol itself hears (the CLI never asks)."""
    reply = raw_run(world, RunSpec(command=("true",)), ["t=env:HOME"])
    assert reply["error"] == (
        "secret 't' comes from env:HOME, but the daemon cannot read your environment: "
        "store it (secretd secret create), bind it in the daemon's config, or use --no-daemon"
    )
    assert reply["exit_code"] == 2


def test_env_references_make_the_cli_run_in_process(world: World, daemon: Daemon) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "secretd", "run", "--secret", "t=env:CI_TOKEN", "--",
         "cat", "/run/secrets/t"],
        cwd=world.root, env=world.env(SECRETD_HOST=world.host, CI_TOKEN=CANARY),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (result.returncode, result.stdout) == (0, CANARY), result.stderr
    assert not any(str(e["msg"]).startswith("run ") for e in daemon.events())


def test_a_caller_without_any_grant_is_refused_before_its_request_is_read(
    world: World, daemon: Daemon
) -> None:
    world.config.write_text(
        world.config.read_text().replace('users = ["nobody"]', 'users = []\ngroups = ["root"]')
    )
    daemon.stop()
    daemon.start()
    result = client(world, "ps", user=NOBODY)
    assert result.returncode == 1
    assert result.stderr.startswith(
        f"secretd: policy in {world.config} grants uid 65534 (nobody) nothing: ask"
    )


def test_resolve_check_answers_with_names_only(world: World, daemon: Daemon) -> None:
    code = (
        "import json, socket, sys; from secretd import protocol; "
        "s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); c = protocol.Channel(s); "
        "c.send(protocol.request('resolve-check', secrets=['api_key', 'db_password', 'nope'])); "
        "print(json.dumps(c.receive(5)[0]))"
    )
    result = subprocess.run(
        [
            "su",
            "nobody",
            "-s",
            "/bin/sh",
            "-c",
            f'cd /work/main && {sys.executable} -c "{code}" {world.socket}',
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    reply = json.loads(result.stdout)
    assert reply == {
        "ok": True,
        "secrets": [
            {"secret": "api_key", "allowed": True, "known": True},
            {"secret": "db_password", "allowed": False, "known": None},
            {"secret": "nope", "allowed": False, "known": None},
        ],
    }
    assert CANARY not in result.stdout and DB_PASSWORD not in result.stdout


def test_ps_and_stop_respect_ownership(world: World, daemon: Daemon) -> None:
    ready = world.root / "marks" / "ready"  # not world.root: a world-writable directory
    ready.parent.mkdir()  # above the socket would make clients refuse it
    ready.parent.chmod(0o777)
    script = (
        f"cd {world.root} && exec {sys.executable} -m secretd run --name theirs --secret "
        f"api_key -- sh -c 'touch {ready}; exec sleep 60'"
    )
    theirs = subprocess.Popen(
        ["su", "nobody", "-s", "/bin/sh", "-c", script],
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "SECRETD_HOST": world.host},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(ready.exists, "nobody's command to start")
        mine = json.loads(client(world, "ps", "--format", "json").stdout)
        assert [(r["name"], r["user"], r["secrets"]) for r in mine] == [
            ("theirs", "nobody", ["api_key"])
        ]
        assert client(world, "ps", "-q", user=NOBODY).stdout == mine[0]["id"] + "\n"
        refused = call(world.socket, protocol.request("stop", id="nope"))
        assert refused["ok"] is False and "no run 'nope'" in str(refused["error"])
        stopped = call(world.socket, protocol.request("stop", id="theirs", timeout=2))
        assert stopped == {"ok": True, "id": mine[0]["id"], "stopped": True}
        _, err = theirs.communicate(timeout=10)
        assert theirs.returncode == 143, err
    finally:
        if theirs.poll() is None:
            theirs.kill()
            theirs.communicate()
