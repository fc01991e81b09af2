"""What a raw client sends is checked before the daemon keeps or acts on it: types and
characters of every field, names nobody may probe, options only root may use."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from secretd import protocol

from .conftest import NOBODY, Daemon, World, client, wait_for

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parents[2]
# One request as a client that speaks the protocol itself; a run gets /dev/null as stdio
# and, once started, stays connected until its command ends.
RAW = """\
import json, os, socket, sys
from secretd import protocol
sock = socket.socket(socket.AF_UNIX)
sock.connect(sys.argv[1])
chan = protocol.Channel(sock)
message = json.loads(sys.argv[2])
null = os.open(os.devnull, os.O_RDWR)
chan.send(message, [null] * 3 if message["op"] == "run" else [])
while True:
    reply = chan.receive(60)[0]
    print(json.dumps(reply), flush=True)
    if reply.get("event") != "started":
        break
"""


def raw(world: World, message: dict[str, Any], user: int | None = None) -> subprocess.Popen[str]:
    """Send ``message`` as root or as ``nobody``; each reply is a line of its stdout."""
    argv = [sys.executable, "-c", RAW, str(world.socket), json.dumps(message)]
    if user is not None:
        line = " ".join("'" + part.replace("'", "'\\''") + "'" for part in argv)
        argv = ["su", "nobody", "-s", "/bin/sh", "-c", f"cd {REPO} && exec {line}"]
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}
    return subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)


def answer(world: World, message: dict[str, Any], user: int | None = None) -> dict[str, Any]:
    proc = raw(world, message, user)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    reply: dict[str, Any] = json.loads(out.splitlines()[0])
    return reply


def shared(world: World) -> Path:
    """A directory where ``nobody``'s commands may leave marks."""
    path = world.root / "shared"
    path.mkdir(exist_ok=True)
    path.chmod(0o777)
    return path


def run(world: World, **spec: Any) -> dict[str, Any]:
    return protocol.request("run", spec=spec, secrets=[], cwd=str(world.root))


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ({"name": 5}, "RunSpec field 'name' must be a string or null, not an integer"),
        ({"command": "rm -rf"}, "RunSpec field 'command' must be a list of strings, not a str"),
        ({"command": ["sleep", 30]}, "RunSpec field 'command[1]' must be a string, not an int"),
        ({"detach": "yes"}, "RunSpec field 'detach' must be true or false, not a string"),
        ({"env": [["A"]]}, "RunSpec field 'env[0]' must be a list of 2 strings, not a list"),
        ({"name": "web\nabc123  sleep"}, "run name 'web\\nabc123  sleep' has a control char"),
        ({"name": "x" * 200}, "run name 'xxxxxxxx"),
        ({"workdir": "/tmp\x00"}, "RunSpec field 'workdir' holds a NUL character"),
    ],
)
def test_a_malformed_run_is_refused_naming_the_field_and_ps_keeps_working(
    world: World, daemon: Daemon, spec: dict[str, Any], error: str
) -> None:
    spec.setdefault("command", ["sleep", "30"])
    reply = answer(world, run(world, **spec), user=NOBODY)
    assert reply["ok"] is False and reply.get("event") != "started", reply
    assert str(reply["error"]).startswith(f"malformed RunSpec: {error}")
    assert "\n" not in str(reply["error"])
    listed = client(world, "ps")
    assert (listed.returncode, listed.stderr) == (0, "")
    assert len(listed.stdout.splitlines()) == 1  # the header: nothing started


def test_ps_shows_control_characters_escaped(world: World, daemon: Daemon) -> None:
    """A command may hold any character; ``ps`` prints each row on one line, escaped."""
    ready = shared(world) / "ready"
    script = f"\n\x1b[2J\x07\ntouch {ready}; exec sleep 30"
    proc = raw(world, run(world, command=["sh", "-c", script]), user=NOBODY)
    try:
        wait_for(ready.exists, "the command to start")
        table = client(world, "ps")
        assert table.returncode == 0, table.stderr
        assert "\x1b" not in table.stdout and "\x07" not in table.stdout
        header, row = table.stdout.splitlines()
        assert '"sh -c \\x0a\\x1b[2J\\x07' in row and row.endswith("nobody")
        (listed,) = json.loads(client(world, "ps", "--format", "json").stdout)
        assert listed["command"] == ["sh", "-c", script]  # JSON keeps it exact, escaped
    finally:
        proc.kill()
        proc.communicate()


def test_resolve_check_tells_an_ungranted_caller_nothing_about_existence(
    world: World, daemon: Daemon
) -> None:
    asked = ["db_password", "db_nothing", "api_key", "api_nothing"]
    reply = answer(world, protocol.request("resolve-check", secrets=asked), user=NOBODY)
    assert reply["secrets"] == [
        {"secret": "db_password", "allowed": False, "known": None},
        {"secret": "db_nothing", "allowed": False, "known": None},
        {"secret": "api_key", "allowed": True, "known": True},
        {"secret": "api_nothing", "allowed": True, "known": False},
    ]
    # root sees the whole truth
    reply = answer(world, protocol.request("resolve-check", secrets=asked[:2]))
    assert [item["known"] for item in reply["secrets"]] == [True, False]


def test_a_caller_other_than_root_cannot_detach_a_host_command(
    world: World, daemon: Daemon
) -> None:
    marker = shared(world) / "ran"
    request = run(world, command=["touch", str(marker)], detach=True)
    reply = answer(world, request, user=NOBODY)
    assert reply["ok"] is False
    assert reply["error"] == (
        "-d/--detach is for images: a host command runs in the foreground: drop -d"
    )
    assert reply["exit_code"] == 2
    assert not marker.exists()
    # in-process alike: nothing would give its leases back after the run
    alone = client(world, "run", "--no-daemon", "-d", "--", "touch", str(marker))
    assert (alone.returncode, alone.stderr) == (2, f"secretd: {reply['error']}\n")
    assert not marker.exists()


def test_stop_without_an_id_stops_nothing(world: World, daemon: Daemon) -> None:
    ready = world.root / "ready"
    sleeper = raw(world, run(world, command=["sh", "-c", f"touch {ready}; exec sleep 30"]))
    try:
        wait_for(ready.exists, "the command to start")
        for request in (protocol.request("stop"), protocol.request("stop", id="")):
            reply = answer(world, request)
            assert reply["ok"] is False
            assert reply["error"] == "stop needs the id or name of a run: see 'secretd ps'"
        refused = client(world, "stop", "")
        assert refused.returncode == 2
        assert refused.stderr.startswith("secretd: stop needs the id or name of a container: see")
        assert sleeper.poll() is None
        assert len(client(world, "ps", "-q").stdout.split()) == 1
    finally:
        sleeper.kill()
        sleeper.communicate()


def test_tables_show_stored_labels_escaped(world: World, daemon: Daemon) -> None:
    label = "web\n\x1b[2Jsecret   1"
    created = client(
        world, "secret", "create", "api_token", "-", "--label", f"team={label}", input="x"
    )
    assert created.returncode == 0, created.stderr
    listed = client(world, "secret", "ls")
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert row.startswith("api_token ") and row.endswith("team=web\\x0a\\x1b[2Jsecret   1")


def test_a_cwd_with_a_nul_is_refused(world: World, daemon: Daemon) -> None:
    request = run(world, command=["true"]) | {"cwd": "/tmp\0/x"}
    reply = answer(world, request, user=NOBODY)
    assert reply["error"] == "the cwd of a run request must be an absolute path"
    assert "internal error" not in daemon.logs()


@pytest.mark.parametrize(
    "damage",
    [{"command": [1, "x"]}, {"owner": "1"}, {"created": "yesterday"}, {"name": ["a"]}],
)
def test_ps_skips_a_damaged_container_record(
    world: World, daemon: Daemon, damage: dict[str, Any]
) -> None:
    good, bad = world.state / "containers" / ("a" * 64), world.state / "containers" / ("b" * 64)
    for directory in (good, bad):
        record = {
            "id": directory.name, "image": "busybox", "command": ["sleep", "1"], "secrets": [],
            "runc": "runc", "runc_root": "/nonexistent", "status": "exited", "exit_code": 0,
        }  # fmt: skip
        directory.mkdir(parents=True)
        (directory / "meta.json").write_text(
            json.dumps(record | damage if directory == bad else record)
        )
    listed = client(world, "ps", "-a", "-q")
    assert (listed.returncode, listed.stderr, listed.stdout) == (0, "", "a" * 12 + "\n")


def test_ps_quiet_escapes_an_id_from_a_record(world: World, daemon: Daemon) -> None:
    directory = world.state / "containers" / ("c" * 64)
    directory.mkdir(parents=True)
    record = {
        "id": "\x1b[2J" + "c" * 60, "image": "busybox", "command": ["true"], "secrets": [],
        "runc": "runc", "runc_root": "/nonexistent", "status": "exited", "exit_code": 0,
    }  # fmt: skip
    (directory / "meta.json").write_text(json.dumps(record))
    listed = client(world, "ps", "-a", "-q")
    assert (listed.returncode, listed.stdout) == (0, "\\x1b[2J" + "c" * 8 + "\n")
