"""Bad input and faults: tampering, wrong keys, concurrent writers, crashes, plaintext at rest."""

from __future__ import annotations

import errno
import hashlib
import os
import random
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
import traceback
from collections import defaultdict
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from secretd.config import load_config
from secretd.errors import SecretNotFound, StoreError
from secretd.sealing import Passphrases
from secretd.store import LocalStore
from tests.conftest import Runner
from tests.store.storedb import StoreFactory, integrity, sealed_of, versions_of, write_sealed
from tests.store.writer import SHARED, big_value

WRITER = Path(__file__).with_name("writer.py")
AUTH_FAILED = "secret 'x' failed authentication: the store is damaged or the key is wrong"


def files_under(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()
    }


@pytest.mark.parametrize("where", [0, 20, -1])
def test_one_flipped_byte_fails_authentication_and_only_that_secret(
    store: LocalStore, where: int
) -> None:
    store.create("x", b"x-value")
    store.create("y", b"y-value")
    sealed = bytearray(sealed_of(store.path, "x", 1))
    sealed[where] ^= 0x01  # in the nonce, the ciphertext, the tag
    write_sealed(store.path, "x", 1, bytes(sealed))
    with pytest.raises(StoreError) as caught:
        LocalStore.from_config(load_config()).read("x")
    assert caught.value.line() == AUTH_FAILED
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert store.read("y") == (1, b"y-value")
    store.rotate("x", b"repaired")
    assert store.read("x") == (2, b"repaired")


def test_wrong_passphrase_leaves_the_database_byte_identical(
    secretd: Runner, state_dir: Path
) -> None:
    right = dict(os.environ, SECRETD_PASSPHRASE="right one")
    assert secretd("store", "init", "--passphrase", env=right).returncode == 0
    assert secretd("secret", "create", "a", "-", input="v", env=right).returncode == 0
    before = files_under(state_dir)
    assert sorted(before) == ["store.db"]

    wrong = dict(os.environ, SECRETD_PASSPHRASE="wrong", SECRETD_NEW_PASSPHRASE="new")
    expected = (
        f"secretd: wrong passphrase for the local store {state_dir / 'store.db'}: "
        "check SECRETD_PASSPHRASE or type it again\n"
    )
    for args in (
        ("secret", "create", "b", "-"),
        ("secret", "rotate", "a", "-"),
        ("store", "rekey"),
    ):
        result = secretd(*args, input="v", env=wrong)
        assert (result.returncode, result.stderr, result.stdout) == (1, expected, ""), args
    assert files_under(state_dir) == before


def test_concurrent_writers_lose_nothing(state_dir: Path) -> None:
    procs, count = 8, 50
    writers = [
        subprocess.Popen(
            [sys.executable, str(WRITER), "mixed", str(index), str(count)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for index in range(procs)
    ]
    commits: dict[str, dict[int, str]] = defaultdict(dict)
    for writer in writers:
        out, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err
        for line in out.splitlines():
            name, version, digest = line.split()
            assert int(version) not in commits[name], f"{name} version {version} committed twice"
            commits[name][int(version)] = digest
    assert sum(len(v) for v in commits.values()) == procs * count
    assert set(SHARED) <= set(commits) and len(commits) == len(SHARED) + procs * 5

    store = LocalStore.from_config(load_config())
    assert integrity(store.path) == "ok"
    assert [info.name for info in store.list_secrets()] == sorted(commits)
    for name, versions in commits.items():
        last = len(versions)
        assert sorted(versions) == list(range(1, last + 1)), name  # consecutive, no gaps
        assert store.current_version(name) == last
        kept = list(range(max(1, last - 4), last + 1))
        assert versions_of(store.path, name) == kept
        for number in kept:
            value = store.read(name, number)[1]
            assert hashlib.sha256(value).hexdigest() == versions[number], (name, number)


def test_sigkilled_writer_leaves_every_secret_at_its_last_commit(
    make_store: StoreFactory,
) -> None:
    store = make_store()
    store.create("big", big_value(1))
    store.create("small", b"untouched")
    rng = random.Random(2024)
    killed_mid_write = 0
    for _ in range(12):
        known = store.current_version("big")
        writer = subprocess.Popen(
            [sys.executable, str(WRITER), "big", "big"], stdout=subprocess.PIPE, text=True
        )
        assert writer.stdout is not None
        assert writer.stdout.readline().startswith("writing")
        time.sleep(rng.uniform(0.0, 0.1))
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        lines = writer.stdout.read().splitlines()
        writer.stdout.close()
        committed = [int(line.split()[1]) for line in lines if line.startswith("committed")]
        if lines and lines[-1].startswith("writing"):
            killed_mid_write += 1

        after = make_store()
        assert integrity(after.path) == "ok"
        latest, value = after.read("big")
        last_printed = committed[-1] if committed else known
        assert latest in (last_printed, last_printed + 1)  # +1: killed after COMMIT, before print
        assert value == big_value(latest)
        for version in versions_of(after.path, "big"):
            assert after.read("big", version)[1] == big_value(version)
        assert after.read("small") == (1, b"untouched")
        if killed_mid_write >= 3:
            break
    assert killed_mid_write >= 1, "no kill landed in the middle of a write"


def test_no_plaintext_at_rest_nor_in_any_output(
    secretd: Runner, state_dir: Path, make_store: StoreFactory
) -> None:
    canary = "canary-" + secrets.token_hex(16)
    assert secretd("secret", "create", "warmup", "-", input="w").returncode == 0
    outputs: list[str] = []
    with closing(sqlite3.connect(state_dir / "store.db")) as reader:
        reader.execute("SELECT count(*) FROM secrets").fetchone()  # keeps the WAL in place
        runs = [
            ("--debug", "secret", "create", "api_key", "--label", "env=ci", "-"),
            ("secret", "create", "api_key", "-"),  # exists: an error
            ("--debug", "secret", "rotate", "api_key", "-"),
            ("secret", "rotate", "missing", "-"),
            ("secret", "create", "removed", "-"),
            ("secret", "rm", "removed"),
            ("secret", "ls"),
            ("secret", "ls", "--format", "json"),
            ("secret", "inspect", "api_key", "warmup"),
            ("info",),
            ("info", "--format", "json"),
        ]
        for args in runs:
            result = secretd(*args, input=canary)
            outputs += [result.stdout, result.stderr]
        wal = state_dir / "store.db-wal"
        assert wal.stat().st_size > 0
        at_rest = files_under(state_dir)
        assert "store.db-wal" in at_rest
    at_rest_after_checkpoint = files_under(state_dir)
    for name, data in [*at_rest.items(), *at_rest_after_checkpoint.items()]:
        assert canary.encode() not in data, name
    for text in outputs:
        assert canary not in text
    assert "api_key" in "".join(outputs)  # the commands did run
    assert make_store().read("api_key") == (2, canary.encode())

    with pytest.raises(StoreError) as caught:
        make_store().create("api_key", canary.encode())
    assert canary not in "".join(traceback.format_exception(caught.value))


def test_a_damaged_database_is_one_clear_line(secretd: Runner, state_dir: Path) -> None:
    state_dir.mkdir(mode=0o700)
    (state_dir / "store.db").write_bytes(b"this is not an SQLite database, not at all" * 100)
    result = secretd("secret", "ls")
    assert result.returncode == 1
    assert result.stderr == (
        f"secretd: the local store {state_dir / 'store.db'} is damaged: "
        "file is not a database: restore it from a backup\n"
    )


RECOVER = "restore it from a backup, or move it away to start a new, empty store"


def test_a_truncated_store_is_refused_never_made_anew(secretd: Runner, state_dir: Path) -> None:
    for name in ("a", "b"):
        assert secretd("secret", "create", name, "-", input="v").returncode == 0
    db = state_dir / "store.db"
    os.truncate(db, 0)
    for leftover in state_dir.glob("store.db-*"):
        leftover.unlink()  # as a disk would lose them, or a careless `> store.db; rm *-wal`
    key = (state_dir / "store.key").read_bytes()
    line = f"secretd: the local store {db} is empty (0 bytes): {RECOVER}\n"
    for args, code in [
        (("secret", "create", "c", "-"), 1),
        (("secret", "rotate", "a", "-"), 1),
        (("secret", "ls"), 1),
        (("secret", "rm", "a"), 1),
        (("store", "init"), 1),
        (("run", "--secret", "a", "--", "true"), 125),
    ]:
        result = secretd(*args, input="new value")
        assert (result.returncode, result.stderr, result.stdout) == (code, line, ""), args
    assert db.stat().st_size == 0 and (state_dir / "store.key").read_bytes() == key
    assert sorted(p.name for p in state_dir.iterdir()) == ["store.db", "store.key"]


def test_a_database_of_another_program_is_not_taken_over(secretd: Runner, state_dir: Path) -> None:
    state_dir.mkdir(mode=0o700)
    db = state_dir / "store.db"
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("CREATE TABLE notes (text TEXT)")
    before = db.read_bytes()
    result = secretd("secret", "create", "a", "-", input="v")
    assert result.returncode == 1
    assert result.stderr == f"secretd: the local store {db} holds no secretd store: {RECOVER}\n"
    assert db.read_bytes() == before


@pytest.mark.parametrize("store_exists", [True, False])
def test_a_truncated_key_file_is_refused_never_replaced(
    secretd: Runner, state_dir: Path, store_exists: bool
) -> None:
    assert secretd("secret", "create", "a", "-", input="v").returncode == 0
    key_file = state_dir / "store.key"
    os.truncate(key_file, 0)
    if not store_exists:
        (state_dir / "store.db").unlink()
    result = secretd("secret", "create", "b", "-", input="v")
    assert result.returncode == 1
    assert result.stderr == (
        f"secretd: the key file {key_file} is damaged (0 bytes, a secretd key has 32): "
        "restore it from your backup (the store cannot be opened without it)\n"
    )
    assert key_file.read_bytes() == b""
    assert (state_dir / "store.db").exists() == store_exists


def test_damaged_passphrase_settings_are_one_line(secretd: Runner, state_dir: Path) -> None:
    env = dict(os.environ, SECRETD_PASSPHRASE="pass phrase")
    assert secretd("secret", "create", "a", "-", input="v", env=env).returncode == 0
    with closing(sqlite3.connect(state_dir / "store.db")) as conn, conn:
        conn.execute('UPDATE keyring SET kdf = \'{"kdf": "scrypt", "salt": 7}\'')
    result = secretd("secret", "rotate", "a", "-", input="v", env=env)
    assert (result.returncode, result.stderr) == (
        1,
        "secretd: the local store's passphrase settings are damaged: restore it from a backup\n",
    )


def canary_value(token: str) -> bytes:
    """A large value (so a kill can land while it is written) made of one canary token."""
    return (token + "\n").encode() * (400_000 // (len(token) + 1))


def assert_no_canary(directory: Path, tokens: list[str]) -> None:
    for name, data in files_under(directory).items():
        for token in tokens:
            assert token.encode() not in data, (name, token)


def test_sigkilled_create_and_rotate_leave_every_secret_at_its_last_commit(
    secretd: Runner, state_dir: Path, make_store: StoreFactory, tmp_path: Path
) -> None:
    """`secretd secret create`/`rotate` killed at random points, for about 12 seconds."""
    rng = random.Random(7)
    tokens: list[str] = []
    committed: dict[str, tuple[int, bytes]] = {}
    for name in ("kept", "rotated"):
        tokens.append("canary-" + secrets.token_hex(16))
        value = canary_value(tokens[-1])
        assert secretd("secret", "create", name, "-", input=value).returncode == 0
        committed[name] = (1, value)
    deadline, outcomes = time.monotonic() + 12, set()
    for attempt in range(200):
        if time.monotonic() > deadline:
            break
        tokens.append("canary-" + secrets.token_hex(16))
        value, source = canary_value(tokens[-1]), tmp_path / "value"
        source.write_bytes(value)
        name = "rotated" if attempt % 2 else f"new-{attempt}"
        verb = "rotate" if name == "rotated" else "create"
        writer = subprocess.Popen(
            [sys.executable, "-m", "secretd", "secret", verb, name, str(source)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        time.sleep(rng.uniform(0.0, 0.9))
        writer.kill()
        _, err = writer.communicate(timeout=60)
        assert err == b""  # killed, or done: never a complaint

        store = make_store()
        assert integrity(store.path) == "ok"
        before = committed.get(name, (0, b""))
        try:
            now = store.read(name)
        except SecretNotFound:
            now = before
        assert now in (before, (before[0] + 1, value)), (attempt, now[0], before[0])
        outcomes.add((writer.returncode, now == before))
        committed[name] = now
        for other, (version, expected) in committed.items():
            if version:
                assert store.read(other) == (version, expected), other
        assert_no_canary(state_dir, tokens)
    assert (-signal.SIGKILL, True) in outcomes, "no kill landed before a commit"
    assert (-signal.SIGKILL, False) in outcomes or (0, False) in outcomes, "nothing committed"


def test_a_killed_first_create_never_leaves_a_store_that_is_refused(
    secretd: Runner, tmp_path: Path
) -> None:
    rng = random.Random(3)
    for attempt in range(4):
        env = dict(os.environ, SECRETD_STATE_DIR=str(tmp_path / f"state-{attempt}"))
        writer = subprocess.Popen(
            [sys.executable, "-m", "secretd", "secret", "create", "a", "-"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        time.sleep(rng.uniform(0.2, 0.8))
        writer.kill()
        writer.communicate(b"v", timeout=60)
        again = secretd("secret", "create", "a", "-", input="v", env=env)
        assert again.returncode == 0 or "already exists" in again.stderr, again.stderr
        assert secretd("secret", "ls", "-q", env=env).stdout == "a\n"


@pytest.fixture
def tiny_state(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs as the state filesystem (the store needs some room for its WAL)."""
    mountpoint = tmp_path / "tiny"
    mountpoint.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(mountpoint)], check=True
    )
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=True)


def fill(directory: Path) -> Path:
    """Take every free block of ``directory``'s filesystem."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


@pytest.mark.root  # mounts a tmpfs
def test_a_full_state_filesystem_is_one_line_and_loses_nothing(
    secretd: Runner, tiny_state: Path, tmp_path: Path
) -> None:
    state = tiny_state / "state"
    env = dict(os.environ, SECRETD_STATE_DIR=str(state))
    tokens = ["canary-" + secrets.token_hex(16) for _ in range(4)]
    assert secretd("secret", "create", "a", "-", input=tokens[0], env=env).returncode == 0
    assert secretd("secret", "rotate", "a", "-", input=tokens[1], env=env).returncode == 0
    filler = fill(tiny_state)
    big = tmp_path / "big"
    big.write_bytes(canary_value(tokens[2]))
    space = f"free some space on the filesystem of {state}"
    for args, code in [
        (("secret", "create", "b", str(big)), 1),
        (("secret", "rotate", "a", str(big)), 1),
        (("run", "--secret", "a", "--", "true"), 125),
    ]:
        result = secretd(*args, env=env)
        assert result.returncode == code, (args, result.stderr)
        assert (
            result.stderr.startswith("secretd: the local store ") and result.stderr.count("\n") == 1
        )
        assert result.stderr.endswith(f": {space}\n"), result.stderr
    fresh = dict(env, SECRETD_STATE_DIR=str(tiny_state / "fresh"))
    result = secretd("secret", "create", "c", "-", input=tokens[3], env=fresh)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "No space left on device" in result.stderr or space in result.stderr
    assert_no_canary(tiny_state, tokens)

    filler.unlink()
    store = LocalStore.from_config(load_config(environ=env), Passphrases({}))
    assert integrity(store.path) == "ok"
    assert (
        store.read("a") == (2, tokens[1].encode()) and store.read("a", 1)[1] == tokens[0].encode()
    )
    assert [info.name for info in store.list_secrets()] == ["a"]
    assert secretd("secret", "rotate", "a", "-", input="after", env=env).returncode == 0
