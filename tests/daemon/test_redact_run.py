"""Redaction and many-at-once references through a real daemon: the daemon filters the
output it writes to the client's descriptors (root's runs and ``nobody``'s), keeps exit
statuses, and reads a ``dotenv:...#*`` tree by the same file rules as a single key."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

import pytest

from .conftest import CANARY, CONFIG, DB_PASSWORD, NOBODY, Daemon, World, client

pytestmark = pytest.mark.root

PRINT = "cat /run/secrets/api_key; echo; printf %s \"$(base64 < /run/secrets/api_key)\"; exit 3"


@pytest.mark.parametrize("user", [None, NOBODY])
def test_the_daemon_masks_what_the_command_prints_and_keeps_its_status(
    world: World, daemon: Daemon, user: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SECRETD_REDACT")  # the default (tests/conftest.py turns it off)
    masked = client(world, "run", "--secret", "api_key", "--", "sh", "-c", PRINT, user=user)
    assert masked.returncode == 3, masked.stderr
    # base64's last character mixes the value's last bits with padding (docs/redaction.md)
    assert masked.stdout in ("[MASKED]\n[MASKED]", "[MASKED]\n[MASKED]Q=")
    plain = client(
        world, "run", "--no-redact", "--secret", "api_key", "--", "sh", "-c", PRINT, user=user
    )
    assert (plain.returncode, plain.stdout.split("\n")[0]) == (3, CANARY), plain.stderr
    assert CANARY not in daemon.logs()


def test_a_terminal_stays_a_terminal_through_the_daemon(world: World, daemon: Daemon) -> None:
    inner = [sys.executable, "-m", "secretd", "run", "--redact", "--secret", "api_key", "--"]
    script = "test -t 0 && test -t 1 && test -t 2 && echo on-a-tty; cat /run/secrets/api_key"
    result = subprocess.run(
        ["script", "-qec", shlex.join([*inner, "sh", "-c", script]), "/dev/null"],
        cwd=world.root, env=world.env(SECRETD_HOST=world.host), capture_output=True,
        text=True, timeout=30, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "on-a-tty" in result.stdout and "[MASKED]" in result.stdout
    assert CANARY not in result.stdout


def test_a_dotenv_tree_is_read_by_the_daemons_file_rules(world: World) -> None:
    """``nobody`` may use ``api_tree``, a ``#*`` tree of a file in its own directory: the
    daemon delivers the file's keys, and refuses when nobody swaps it for a link to a
    root-only file (as it does for a single key)."""
    mine = world.root / "nobody"
    mine.mkdir(mode=0o755)
    os.chown(mine, NOBODY, NOBODY)
    tree = mine / "tree.env"
    tree.write_text("USER=app\nPASS=tree-password-1\n")
    os.chown(tree, NOBODY, NOBODY)
    world.config.write_text(f'{CONFIG}\n[secrets.api_tree]\nsource = "dotenv:nobody/tree.env#*"\n')
    daemon = Daemon(world)
    daemon.start()
    try:
        script = "ls /run/secrets/api_tree; cat /run/secrets/api_tree/PASS"
        args = ("run", "--no-redact", "--secret", "api_tree", "--", "sh", "-c", script)
        ok = client(world, *args, user=NOBODY)
        assert (ok.returncode, ok.stdout) == (0, "PASS\nUSER\ntree-password-1"), ok.stderr
        tree.unlink()
        (world.root / "db.env").write_text(f"PASS={DB_PASSWORD}\n")
        (world.root / "db.env").chmod(0o600)
        tree.symlink_to(world.root / "db.env")
        refused = client(world, *args, user=NOBODY)
        assert refused.returncode == 125
        assert "symbolic link" in refused.stderr and refused.stderr.count("\n") == 1
        assert DB_PASSWORD not in refused.stdout + refused.stderr
    finally:
        assert daemon.stop() == 0, daemon.logs()
