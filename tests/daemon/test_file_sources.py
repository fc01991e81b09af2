"""``file:``/``dotenv:`` sources read by a root daemon for ``nobody``, tried as ``nobody``
would attack them: swap a bound path it controls for a symbolic link, a FIFO or a hard
link to a root-only file; expand the daemon's own credentials from a ``.env`` file."""

from __future__ import annotations

import os
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import CANARY, CONFIG, DB_PASSWORD, NOBODY, Daemon, World, client

pytestmark = pytest.mark.root

TOKEN = "hvs.daemon-canary-token-91ab"
PASSPHRASE = "daemon-canary-passphrase-5e2d"
NAMES = {
    "api_own": "file:nobody/own.txt",
    "api_swap": "file:nobody/swap.txt",
    "api_through": "file:nobody/dir/db_password.txt",
    "api_hard": "file:nobody/hard.txt",
    "api_acl": "file:acl/hard.txt",
    "api_env": "dotenv:nobody/app.env#A",
    "api_zero": "file:/dev/zero",
    "api_zero_env": "dotenv:/dev/zero#A",
}


def as_nobody(script: str) -> None:
    """What the attacker does to the paths it controls, as itself."""
    subprocess.run(
        ["setpriv", "--reuid", str(NOBODY), "--regid", str(NOBODY), "--clear-groups"]
        + ["sh", "-ec", script],
        check=True,
        timeout=30,
    )


@pytest.fixture
def attacked(
    world: World, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[tuple[World, Path]]:
    """A root daemon with Vault's token and the store passphrase in its environment, whose
    config binds ``api_*`` names to paths in a directory ``nobody`` owns (plus the
    world's root-only ``api_key``); an indirect parameter goes on top of the config."""
    monkeypatch.setenv("VAULT_TOKEN", TOKEN)
    monkeypatch.setenv("SECRETD_PASSPHRASE", PASSPHRASE)
    mine = world.root / "nobody"
    mine.mkdir(mode=0o755)
    os.chown(mine, NOBODY, NOBODY)
    as_nobody(
        f"cd {mine}; umask 077; printf %s nobodys-own > own.txt; printf %s harmless > swap.txt;"
        " printf 'A=x${VAULT_TOKEN}${SECRETD_PASSPHRASE}y\\n' > app.env"
    )
    bindings = "".join(f'[secrets.{n}]\nsource = "{s}"\n\n' for n, s in NAMES.items())
    world.config.write_text(f"{getattr(request, 'param', '')}\n{CONFIG}\n{bindings}")
    daemon = Daemon(world)
    daemon.start()
    yield world, mine
    assert daemon.stop() == 0, daemon.logs()
    logs = daemon.logs()
    for value in (TOKEN, PASSPHRASE, DB_PASSWORD):
        assert value not in logs


def cat(world: World, name: str, user: int | None = NOBODY) -> subprocess.CompletedProcess[str]:
    return client(world, "run", "--secret", name, "--", "cat", f"/run/secrets/{name}", user=user)


def refused(result: subprocess.CompletedProcess[str], reason: str) -> None:
    assert result.returncode == 125, result.stderr
    assert result.stderr.count("\n") == 1 and reason in result.stderr, result.stderr
    assert DB_PASSWORD not in result.stdout + result.stderr


def test_own_files_and_root_only_files_the_admin_bound_are_delivered(
    attacked: tuple[World, Path],
) -> None:
    world, _ = attacked
    script = "cat /run/secrets/api_own; echo; cat /run/secrets/api_key"
    args = ("--secret", "api_own", "--secret", "api_key", "--", "sh", "-c", script)
    own = client(world, "run", *args, user=NOBODY)
    assert (own.returncode, own.stdout) == (0, f"nobodys-own\n{CANARY}"), own.stderr


def test_a_bound_path_swapped_for_a_symbolic_link_is_refused(
    attacked: tuple[World, Path],
) -> None:
    world, mine = attacked
    assert cat(world, "api_swap").stdout == "harmless"
    as_nobody(
        f"ln -sfn {world.root}/db_password.txt {mine}/swap.txt; ln -s {world.root} {mine}/dir"
    )
    refused(cat(world, "api_swap"), "it is a symbolic link, which the daemon does not follow")
    refused(cat(world, "api_through"), f"'{mine}/dir' is a symbolic link")
    # root's runs through the daemon follow no link either (the rule is the daemon's)
    refused(cat(world, "api_swap", user=None), "is a symbolic link")


def test_a_root_only_file_in_a_directory_the_caller_controls_is_refused(
    attacked: tuple[World, Path],
) -> None:
    """A hard link is what fs.protected_hardlinks=0 lets nobody make; with it on, a file
    root leaves in nobody's directory is the same case."""
    world, mine = attacked
    os.link(world.root / "db_password.txt", mine / "hard.txt")
    refused(cat(world, "api_hard"), f"may not read it, and could have changed '{mine}'")
    assert cat(world, "api_hard", user=None).stdout == DB_PASSWORD  # root may read it anyway


def test_a_directory_an_acl_lets_the_caller_write_counts_as_its_own(
    attacked: tuple[World, Path],
) -> None:
    """root's directory, mode bits closed to nobody, but an ACL entry lets nobody write."""
    world, _ = attacked
    acl = world.root / "acl"
    acl.mkdir(mode=0o755)
    entries = [(0x01, 7, -1), (0x02, 7, NOBODY), (0x04, 5, -1), (0x10, 7, -1), (0x20, 5, -1)]
    blob = struct.pack("<I", 2) + b"".join(struct.pack("<HHi", *entry) for entry in entries)
    os.setxattr(acl, "system.posix_acl_access", blob)
    as_nobody(f"touch {acl}/mine")  # the ACL does let nobody write there
    os.link(world.root / "db_password.txt", acl / "hard.txt")
    refused(cat(world, "api_acl"), f"could have changed '{acl}'")


def test_a_fifo_or_a_device_is_refused_at_once(attacked: tuple[World, Path]) -> None:
    world, mine = attacked
    as_nobody(f"rm {mine}/swap.txt; mkfifo {mine}/swap.txt")
    started = time.monotonic()
    refused(cat(world, "api_swap"), "it is a FIFO, not a regular file")
    assert time.monotonic() - started < 30
    for name in ("api_zero", "api_zero_env"):
        refused(cat(world, name), "it is a character device, not a regular file")


def test_dotenv_never_expands_the_daemons_credentials(attacked: tuple[World, Path]) -> None:
    world, _ = attacked
    for user in (NOBODY, None):
        result = cat(world, "api_env", user=user)
        assert (result.returncode, result.stdout) == (0, "xy"), result.stderr


@pytest.mark.parametrize("attacked", ["cache_ttl = 600"], indirect=True)
def test_a_cached_value_reaches_only_the_caller_it_was_read_for(
    attacked: tuple[World, Path],
) -> None:
    world, mine = attacked
    os.link(world.root / "db_password.txt", mine / "hard.txt")
    assert cat(world, "api_hard", user=None).stdout == DB_PASSWORD
    refused(cat(world, "api_hard"), "may not read it")
