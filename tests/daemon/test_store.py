"""`secretd secret ...` through the daemon: its store, its policy; values go in, never out."""

from __future__ import annotations

import json

import pytest

from .conftest import NOBODY, Daemon, World, client

pytestmark = pytest.mark.root

TOKEN = "st0re-canary-91ab"


def store_events(daemon: Daemon) -> list[str]:
    return [str(e["msg"]) for e in daemon.events() if str(e["msg"]).startswith("store ")]


def test_admin_manages_the_daemons_store_and_runs_use_it(world: World, daemon: Daemon) -> None:
    created = client(
        world, "secret", "create", "api_token", "-", "--label", "team=web", input=TOKEN
    )
    assert (created.returncode, created.stdout) == (0, "api_token\n"), created.stderr
    assert client(world, "secret", "create", "other", "-", input="x").returncode == 0
    rotated = client(world, "secret", "rotate", "api_token", "-", input=TOKEN + "2")
    assert rotated.stdout == "api_token: version 2\n"
    assert client(world, "secret", "ls", "-q").stdout == "api_token\nother\n"
    (info,) = json.loads(client(world, "secret", "inspect", "api_token").stdout)
    assert (info["Spec"], info["Version"]) == (
        {"Name": "api_token", "Labels": {"team": "web"}},
        {"Index": 2},
    )
    run = client(world, "run", "--secret", "api_token", "--", "cat", "/run/secrets/api_token")
    assert (run.returncode, run.stdout) == (0, TOKEN + "2")
    assert store_events(daemon) == [
        "store create 'api_token' by uid=0",
        "store create 'other' by uid=0",
        "store rotate 'api_token' by uid=0",
    ]
    assert (world.state / "store.db").exists()  # the daemon's state directory
    missing = client(world, "secret", "rm", "nope1", "nope2")
    assert missing.returncode == 1
    assert missing.stderr.startswith(
        "secretd: secrets 'nope1', 'nope2' not found in the local store"
    )
    assert client(world, "secret", "rm", "other").stdout == "other\n"
    assert TOKEN not in daemon.logs()


def test_unprivileged_caller_sees_granted_names_and_cannot_administer(
    world: World, daemon: Daemon
) -> None:
    for name in ("api_token", "other"):
        assert client(world, "secret", "create", name, "-", input=TOKEN).returncode == 0
    assert client(world, "secret", "ls", "-q", user=NOBODY).stdout == "api_token\n"
    run = client(
        world, "run", "--secret", "api_token", "--", "cat", "/run/secrets/api_token", user=NOBODY
    )
    assert (run.returncode, run.stdout) == (0, TOKEN)
    inspect = client(world, "secret", "inspect", "other", user=NOBODY)
    assert inspect.returncode == 1
    assert "does not grant uid 65534 (nobody) the secret 'other'" in inspect.stderr
    for args in (["create", "mine", "-"], ["rotate", "api_token", "-"], ["rm", "api_token"]):
        denied = client(world, "secret", *args, user=NOBODY, input="v")
        assert denied.returncode == 1
        assert (
            f"secretd: policy in {world.config} does not let uid 65534 (nobody) {args[0]} "
            "secrets in the store: ask an administrator to add you to policy.admin_users or "
            "policy.admin_groups\n"
        ) == denied.stderr
    assert client(world, "secret", "ls", "-q").stdout == "api_token\nother\n"


def test_admin_groups_may_administer(world: World, daemon: Daemon) -> None:
    policy = '[policy]\nadmin_groups = ["nogroup"]\n\n[daemon]'
    world.config.write_text(world.config.read_text().replace("[daemon]", policy))
    daemon.stop()
    daemon.start()
    made = client(world, "secret", "create", "made_by_nobody", "-", user=NOBODY, input=TOKEN)
    assert (made.returncode, made.stdout) == (0, "made_by_nobody\n"), made.stderr
    assert client(world, "secret", "ls", "-q", user=NOBODY).stdout == "made_by_nobody\n"
