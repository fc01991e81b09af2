"""``env:`` secrets of a forwarded run: the daemon reads them from the environment the
thin client sent, never from its own, and serves the run itself; any user may use their
own, but ``env:VAR?file`` (a file the daemon would read with root's rights) goes back to
the caller's full CLI, which reads it with the caller's."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon.conftest import CANARY, CONFIG, NOBODY, Daemon, World
from tests.daemon.conftest import daemon as daemon  # noqa: F401 - the fixtures
from tests.daemon.conftest import world as world  # noqa: F401
from tests.support.launcher import install
from tests.support.waiting import wait_for

from .conftest import DAEMON_ONLY, Fast

SETPRIV = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


@pytest.mark.parametrize(
    "ref",
    [f"x=env:{DAEMON_ONLY[0]}", f"env:{DAEMON_ONLY[0]}", "x=env:FASTPATH_DAEMON_*"],
    ids=["named", "bare", "pattern-tree"],
)
def test_the_daemons_own_environment_is_never_read_for_a_caller(fast: Fast, ref: str) -> None:
    args = ["run", "--no-redact", "--secret", ref, "--", "sh", "-c", "cat -- /run/secrets/*"]
    before = len(fast.log.read_text())
    through_daemon = fast.thin(*args)
    log = fast.log.read_text()[before:]
    full = fast.full(*args)
    assert (through_daemon.returncode, through_daemon.stdout, through_daemon.stderr) == (
        full.returncode, full.stdout, full.stderr,
    )  # fmt: skip
    assert through_daemon.returncode == 125
    assert "is not set" in through_daemon.stderr or "no environment variable matches" in (
        through_daemon.stderr
    )
    assert DAEMON_ONLY[1] not in through_daemon.stdout + through_daemon.stderr
    assert "request op=argv" in log and "handed back" not in log  # the daemon said it


def test_a_running_env_run_is_the_daemons(fast: Fast) -> None:
    """``secretd ps`` lists the run while its command runs: the daemon started it."""
    args = ["run", "--name", "envfwd-ps", "--secret", "tok=env:FASTPATH_PS_TOKEN", "--"]
    env = fast.env() | {"FASTPATH_PS_TOKEN": "ps-token-value"}
    argv = [str(fast.launcher), *args, "sleep", "60"]
    with subprocess.Popen(argv, cwd=fast.root / "work", env=env) as running:
        try:
            listed: list[dict[str, object]] = []

            def shown() -> bool:
                listed[:] = json.loads(fast.thin("ps", "--format", "json").stdout or "[]")
                return any(row.get("name") == "envfwd-ps" for row in listed)

            wait_for(shown, "the run in secretd ps", 30)
            row = next(row for row in listed if row.get("name") == "envfwd-ps")
            assert row["secrets"] == ["tok"] and row["kind"] == "run"
            assert "ps-token-value" not in json.dumps(listed)
        finally:
            running.terminate()
        assert running.wait(30) == 143


def as_nobody(world: World, argv: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    """``argv`` as ``nobody``, from a directory without a ``secretd.toml``."""
    base = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "SECRETD_HOST": world.host}
    return subprocess.run(
        [*SETPRIV, *argv], cwd=world.socket.parent, env=base | env, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip


def test_any_user_may_use_their_own_env_secrets(world: World, daemon: Daemon) -> None:  # noqa: F811
    """``nobody``'s policy grants ``api_*`` only; its own variables need no entry."""
    launcher = world.root / "secretd"
    install(launcher)
    args = ["run", "--no-redact", "--secret", "tok=env:NOBODY_TOKEN", "--", "sh", "-c"]
    script = "cat /run/secrets/tok; echo; stat -c %u /run/secrets/tok; id -u"
    result = as_nobody(world, [str(launcher), *args, script], NOBODY_TOKEN="nobody-tok-4a1")
    assert (result.returncode, result.stderr) == (0, ""), daemon.logs()
    assert result.stdout.split() == ["nobody-tok-4a1", str(NOBODY), str(NOBODY)]
    logs = daemon.logs()
    assert "op=argv" in logs and "handed back" not in logs and "secrets=['tok']" in logs


def test_a_pattern_counts_each_secret_it_stands_for(world: World, daemon: Daemon) -> None:  # noqa: F811
    """``env:ATK_*`` over 300 of nobody's variables is 300 secrets: over the daemon's 256
    per run, refused before anything is mounted."""
    launcher = world.root / "secretd"
    install(launcher)
    many = {f"ATK_{n}": "x" for n in range(300)}
    argv = [str(launcher), "run", "--no-redact", "--secret", "env:ATK_*", "--", "true"]
    result = as_nobody(world, argv, **many)
    assert (result.returncode, result.stderr) == (
        2,
        "secretd: this run asks for 300 secrets; the daemon allows 256 per run: raise "
        "[daemon] max_secrets_per_run in the daemon's config\n",
    )
    assert "op=argv" in daemon.logs() and "handed back" not in daemon.logs()


RAW_ARGV = """
import json, socket, sys
from secretd import protocol
path, argv, env = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
    sock.connect(path)
    chan = protocol.Channel(sock)
    chan.send(protocol.request("argv", argv=argv, env=env, cwd="/"), [0, 1, 2])
    print(json.dumps(chan.receive(30)[0]))
"""


@pytest.mark.parametrize("ref", ["x=env:ROOT_FILE?file", "env:ROOT_*?file", "x=env:ROOT_*?file"])
def test_nobody_reads_no_root_file_through_env_file(
    world: World,  # noqa: F811
    daemon: Daemon,  # noqa: F811
    ref: str,
) -> None:
    """``api_key.txt`` is root's, mode 0600: through the thin client, the run goes back to
    nobody's own CLI (refused, as without a daemon); a raw ``argv`` request on the socket
    gets ``fallback`` and nothing else."""
    secret = str(world.root / "api_key.txt")
    assert Path(secret).stat().st_mode & 0o777 == 0o600
    launcher = world.root / "secretd"
    install(launcher)
    args = ["run", "--no-redact", "--secret", ref, "--", "sh", "-c", "cat -- /run/secrets/*"]
    through_thin = as_nobody(world, [str(launcher), *args], ROOT_FILE=secret)
    full = as_nobody(world, [sys.executable, "-m", "secretd", *args], ROOT_FILE=secret)
    assert (through_thin.returncode, through_thin.stdout, through_thin.stderr) == (
        full.returncode, full.stdout, full.stderr,
    )  # fmt: skip
    assert through_thin.returncode == 125 and "Permission denied" in through_thin.stderr
    raw = as_nobody(
        world,
        [sys.executable, "-c", RAW_ARGV, str(world.socket), json.dumps(args[1:]),
         json.dumps({"ROOT_FILE": secret})],
    )  # fmt: skip
    assert json.loads(raw.stdout) == {"event": "fallback"}, raw.stderr
    for seen in (through_thin.stdout, through_thin.stderr, raw.stdout, raw.stderr, daemon.logs()):
        assert CANARY not in seen
    assert daemon.logs().count("handed back") == 2


BOUND = ("ENVFWD_DAEMON_TOKEN", "daemon-bound-value-77a")


@pytest.fixture
def bound(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[Daemon]:  # noqa: F811
    """A daemon whose config binds ``daemon_tok`` to ``env:`` of its own environment."""
    world.config.write_text(f'{CONFIG}\n[secrets.daemon_tok]\nsource = "env:{BOUND[0]}"\n')
    monkeypatch.setenv(*BOUND)
    started = Daemon(world)
    started.start()
    monkeypatch.delenv(BOUND[0])
    yield started
    assert started.stop() == 0, started.logs()


def test_a_name_the_daemon_binds_to_env_reads_the_daemons_own(world: World, bound: Daemon) -> None:  # noqa: F811
    """As an administrator chose: a root caller's bare name reads the daemon's variable;
    with ``env:`` secrets of the caller's own in the same run, it goes back to the
    caller's CLI (where the name is not bound)."""
    launcher, config = world.root / "secretd", world.root / "no-config"
    install(launcher)
    config.mkdir()
    env = world.env(SECRETD_HOST=world.host, XDG_CONFIG_HOME=str(config), MINE="mine-9d")
    assert BOUND[0] not in env

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [str(launcher), "run", "--no-redact", *args, "--", "sh", "-c", "cat /run/secrets/*"]
        return subprocess.run(
            argv, cwd=world.socket.parent, env=env, capture_output=True, text=True, timeout=60
        )

    alone = run("--secret", "daemon_tok")
    assert (alone.returncode, alone.stdout) == (0, BOUND[1]), alone.stderr
    assert "handed back" not in bound.logs()
    mixed = run("--secret", "daemon_tok", "--secret", "mine=env:MINE")
    assert mixed.returncode == 125 and BOUND[1] not in mixed.stdout + mixed.stderr
    assert "'daemon_tok'" in mixed.stderr, mixed.stderr
    assert bound.logs().count("handed back") == 1
