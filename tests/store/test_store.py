"""The encrypted local store through its API: sealing, versions, limits, keys, the provider."""

from __future__ import annotations

import os
import re
import sqlite3
import stat
from contextlib import closing
from pathlib import Path

import pytest

from secretd import sealing
from secretd.backends import load_provider
from secretd.backends.local import LocalProvider
from secretd.config import Config, load_config
from secretd.errors import SecretNotFound, StoreError, UsageError
from secretd.spec import SecretRef
from secretd.store import MAX_VALUE, LocalStore, SecretExists
from tests.store.storedb import StoreFactory, sealed_of, versions_of, write_sealed

RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
AUTH_FAILED = "secret 'x' failed authentication: the store is damaged or the key is wrong"


def ref(name: str, source: str | None = None) -> SecretRef:
    return SecretRef(name=name, source=source or f"local:{name}", target=name)


def test_round_trip_of_binary_values_with_labels_and_times(store: LocalStore) -> None:
    value = bytes(range(256)) * 3
    info = store.create("tls.key", value, {"env": "prod", "team": ""})
    assert store.read("tls.key") == (1, value)
    assert info.version == 1 and dict(info.labels) == {"env": "prod", "team": ""}
    assert re.fullmatch(r"[a-z2-7]{25}", info.id)
    found = store.inspect("tls.key")
    assert found.id == info.id and found.versions == ((1, found.created_at),)
    assert RFC3339_UTC.match(found.created_at) and found.updated_at == found.created_at


def test_rotate_appends_versions_and_keeps_the_last_five(store: LocalStore) -> None:
    store.create("x", b"v1")
    for n in range(2, 8):
        info = store.rotate("x", f"v{n}".encode())
        assert info.version == n
    assert store.read("x") == (7, b"v7")
    assert versions_of(store.path, "x") == [3, 4, 5, 6, 7]
    assert store.read("x", 3) == (3, b"v3")
    with pytest.raises(SecretNotFound) as caught:
        store.read("x", 2)
    assert caught.value.line() == (
        "version 2 of secret 'x' is not in the local store: "
        "it keeps the last 5; see 'secretd secret inspect x'"
    )
    info = store.inspect("x")
    assert info.updated_at > info.created_at and [v for v, _ in info.versions] == [3, 4, 5, 6, 7]


def test_keep_versions_comes_from_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "secretd.toml").write_text("[providers.local]\nkeep_versions = 2\n")
    store = LocalStore.from_config(load_config())
    store.create("x", b"1")
    store.rotate("x", b"2")
    store.rotate("x", b"3")
    assert versions_of(store.path, "x") == [2, 3]


@pytest.mark.parametrize("keep", [0, -1, "5", True, 1.5])
def test_keep_versions_must_be_a_whole_number(tmp_path: Path, keep: object) -> None:
    text = f'"{keep}"' if isinstance(keep, str) else str(keep).lower()
    (tmp_path / "secretd.toml").write_text(f"[providers.local]\nkeep_versions = {text}\n")
    wanted = r"^\[providers.local\] keep_versions in .* is .*: give a whole number of at least 1$"
    with pytest.raises(UsageError, match=wanted):
        LocalStore.from_config(load_config())


def test_path_setting_moves_the_database(tmp_path: Path, state_dir: Path) -> None:
    (tmp_path / "secretd.toml").write_text('[providers.local]\npath = "vault/project.db"\n')
    store = LocalStore.from_config(load_config())
    store.create("x", b"1")
    assert (tmp_path / "vault" / "project.db").is_file()
    assert (state_dir / "store.key").is_file() and not (state_dir / "store.db").exists()
    assert stat.S_IMODE((tmp_path / "vault").stat().st_mode) == 0o700


def test_files_and_directory_are_private(store: LocalStore, state_dir: Path) -> None:
    store.create("x", b"1")
    with closing(sqlite3.connect(store.path)) as reader:  # keeps the WAL and -shm around
        reader.execute("SELECT count(*) FROM secrets").fetchone()
        store.rotate("x", b"2")
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in state_dir.iterdir()}
    assert modes == {
        "store.db": 0o600,
        "store.db-wal": 0o600,
        "store.db-shm": 0o600,
        "store.key": 0o600,
    }
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700
    assert (state_dir / "store.key").stat().st_size == 32


def test_reads_of_a_store_that_does_not_exist_create_nothing(
    store: LocalStore, state_dir: Path
) -> None:
    assert store.list_secrets() == []
    with pytest.raises(SecretNotFound):
        store.read("x")
    with pytest.raises(SecretNotFound):
        store.rotate("x", b"1")
    with pytest.raises(SecretNotFound):
        store.remove("x")
    assert not state_dir.exists()


def test_limits_follow_swarm(store: LocalStore) -> None:
    with pytest.raises(UsageError) as caught:
        store.create("x", b"")
    assert (
        caught.value.line() == "the value for secret 'x' is empty: a secret needs at least one byte"
    )
    with pytest.raises(UsageError) as caught:
        store.create("x", b"a" * MAX_VALUE)
    assert caught.value.line() == (
        "the value for secret 'x' is 500 KiB or larger: "
        "secrets must be smaller than 512000 bytes (Docker Swarm's limit)"
    )
    store.create("x", b"a" * (MAX_VALUE - 1))
    assert store.read("x")[1] == b"a" * (MAX_VALUE - 1)
    with pytest.raises(UsageError):
        store.rotate("x", b"")


def test_names_and_labels_are_checked(store: LocalStore) -> None:
    for bad in ("../x", "-x", "a" * 65, ""):
        with pytest.raises(UsageError, match="invalid secret name"):
            store.create(bad, b"v")
    with pytest.raises(UsageError, match=r"^invalid label ''"):
        store.create("x", b"v", {"": "v"})
    assert store.list_secrets() == []


def test_create_refuses_a_taken_name_and_rm_removes_every_version(store: LocalStore) -> None:
    store.create("x", b"1")
    store.rotate("x", b"2")
    with pytest.raises(SecretExists) as caught:
        store.create("x", b"3")
    assert caught.value.line() == (
        "secret 'x' already exists in the local store: add a version with 'secretd secret rotate x'"
    )
    store.remove("x")
    assert versions_of(store.path, "x") == []
    store.create("x", b"again")
    assert store.read("x") == (1, b"again")


def test_each_write_uses_a_fresh_nonce(store: LocalStore) -> None:
    store.create("a", b"same")
    store.create("b", b"same")
    store.rotate("a", b"same")
    blobs = {
        sealed_of(store.path, "a", 1),
        sealed_of(store.path, "a", 2),
        sealed_of(store.path, "b", 1),
    }
    assert len(blobs) == 3
    assert len({blob[: sealing.NONCE_BYTES] for blob in blobs}) == 3


def test_ciphertext_copied_to_another_row_fails(store: LocalStore) -> None:
    store.create("x", b"x-value")
    store.create("y", b"y-value")
    store.rotate("y", b"y-value-2")
    write_sealed(store.path, "x", 1, sealed_of(store.path, "y", 1))
    with pytest.raises(StoreError) as caught:
        store.read("x")
    assert caught.value.line() == AUTH_FAILED
    write_sealed(store.path, "y", 2, sealed_of(store.path, "y", 1))  # same name, other version
    with pytest.raises(StoreError, match="secret 'y' failed authentication"):
        store.read("y")
    assert store.read("y", 1) == (1, b"y-value")


def test_passphrase_store(make_store: StoreFactory, state_dir: Path) -> None:
    make_store(passphrase="correct horse").init(passphrase=True)
    assert not (state_dir / "store.key").exists()
    make_store(passphrase="correct horse").create("x", b"v")
    assert make_store(passphrase="correct horse").read("x") == (1, b"v")
    with pytest.raises(StoreError) as caught:
        make_store(passphrase="wrong").read("x")
    assert caught.value.line() == (
        f"wrong passphrase for the local store {state_dir / 'store.db'}: "
        "check SECRETD_PASSPHRASE or type it again"
    )
    assert make_store().list_secrets()[0].name == "x"  # metadata needs no passphrase


def test_first_use_with_a_passphrase_in_the_environment_makes_a_passphrase_store(
    make_store: StoreFactory, state_dir: Path
) -> None:
    make_store(passphrase="pw").create("x", b"v")
    assert not (state_dir / "store.key").exists()
    with pytest.raises(StoreError, match="wrong passphrase"):
        make_store(passphrase="other").read("x")


def test_store_init_twice_is_refused(make_store: StoreFactory, state_dir: Path) -> None:
    make_store().init()
    key = (state_dir / "store.key").read_bytes()
    with pytest.raises(
        StoreError, match=r"already exists: change its key with 'secretd store rekey'"
    ):
        make_store(passphrase="pw").init(passphrase=True)
    assert (state_dir / "store.key").read_bytes() == key


def test_missing_or_wrong_key_file(
    store: LocalStore, make_store: StoreFactory, state_dir: Path
) -> None:
    store.create("x", b"v")
    key_file = state_dir / "store.key"
    key_file.write_bytes(os.urandom(32))
    with pytest.raises(StoreError) as caught:
        make_store().read("x")
    assert caught.value.line() == (
        f"the key file {key_file} does not open the local store {state_dir / 'store.db'}: "
        "restore the key file the store was made with"
    )
    key_file.unlink()
    with pytest.raises(StoreError, match=r"key file .* is missing: restore it from your backup"):
        make_store().read("x")


def test_rekey_rewraps_the_data_key_only(make_store: StoreFactory, state_dir: Path) -> None:
    store = make_store()
    store.create("x", b"value")
    db, key_file = state_dir / "store.db", state_dir / "store.key"
    sealed, old_key = sealed_of(db, "x", 1), key_file.read_bytes()

    assert make_store().rekey() == "keyfile"
    assert key_file.read_bytes() != old_key and sealed_of(db, "x", 1) == sealed
    assert make_store().read("x") == (1, b"value")

    assert make_store(new="first pass").rekey("passphrase") == "passphrase"
    assert not key_file.exists()
    assert make_store(passphrase="first pass").read("x") == (1, b"value")

    assert make_store(passphrase="first pass", new="second").rekey() == "passphrase"
    with pytest.raises(StoreError, match="wrong passphrase"):
        make_store(passphrase="first pass").read("x")
    assert make_store(passphrase="second").read("x") == (1, b"value")

    with pytest.raises(StoreError, match="wrong passphrase"):
        make_store(passphrase="first pass").rekey("keyfile")
    assert make_store(passphrase="second").rekey("keyfile") == "keyfile"
    assert make_store().read("x") == (1, b"value") and sealed_of(db, "x", 1) == sealed
    assert sorted(p.name for p in state_dir.iterdir()) == ["store.db", "store.key"]


def test_rekey_interrupted_after_its_commit_is_finished_by_the_next_open(
    make_store: StoreFactory, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_store().create("x", b"value")

    def crash(*args: object) -> None:
        raise OSError("simulated crash between commit and rename")

    with monkeypatch.context() as patch:
        patch.setattr(sealing.KeyEncryptionKeys, "_committed", crash)
        with pytest.raises(OSError, match="simulated crash"):
            make_store().rekey()
    assert (state_dir / "store.key.new").exists()
    assert make_store().read("x") == (1, b"value")
    assert not (state_dir / "store.key.new").exists()
    assert make_store().read("x") == (1, b"value")


def test_provider_reads_latest_or_pinned_versions(store: LocalStore) -> None:
    store.create("api_key", b"one")
    store.rotate("api_key", b"two")
    provider = LocalProvider(store)
    secret = provider.get(ref("app", "local:api_key"))
    assert (secret.name, secret.version, secret.value) == ("app", "2", b"two")
    assert "two" not in repr(secret) and "two" not in str(secret)
    pinned = provider.get(ref("app", "local:api_key?version=1"))
    assert (pinned.version, pinned.value) == ("1", b"one")
    assert provider.version(ref("api_key")) == "2"
    assert provider.version(ref("app", "local:api_key?version=1")) == "1"


def test_provider_version_is_metadata_only(store: LocalStore, state_dir: Path) -> None:
    store.create("api_key", b"one")
    (state_dir / "store.key").unlink()
    provider = LocalProvider(LocalStore.from_config(load_config()))
    assert provider.version(ref("api_key")) == "1"
    with pytest.raises(StoreError, match="is missing"):
        provider.get(ref("api_key"))


def test_provider_not_found_wording(config: Config) -> None:
    provider = load_provider("local", config)
    assert isinstance(provider, LocalProvider)
    with pytest.raises(SecretNotFound) as caught:
        provider.get(ref("db_pass"))
    assert caught.value.line() == (
        "secret 'db_pass' not found in the local store: "
        "create it: printf %s VALUE | secretd secret create db_pass -"
    )
    with pytest.raises(SecretNotFound):
        provider.version(ref("db_pass"))


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("local:x?version=0", "invalid version '0'"),
        ("local:x?version=two", "invalid version 'two'"),
        ("local:x?version=²", "invalid version '²'"),
        ("local:x#field", "has '#field', which the local store lacks"),
        ("local:x?stage=AWSCURRENT", "has '?stage=', which the local store lacks"),
        ("local:../x", "invalid secret name '../x'"),
    ],
)
def test_provider_rejects_what_the_store_cannot_mean(
    store: LocalStore, source: str, message: str
) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        LocalProvider(store).get(ref("x", source))


def test_rekey_leaves_no_copy_of_the_old_wrapped_key(
    make_store: StoreFactory, state_dir: Path
) -> None:
    store = make_store()
    for n in range(20):
        store.create(f"s{n}", os.urandom(2000))
    with closing(sqlite3.connect(store.path)) as other:  # another process has the store open
        old = bytes(other.execute("SELECT wrapped_dek FROM keyring").fetchone()[0])
        make_store().rekey()
        for path in state_dir.iterdir():
            assert old not in path.read_bytes(), path.name


def test_removed_secrets_leave_no_metadata_behind(store: LocalStore, state_dir: Path) -> None:
    store.create("keep", b"v")
    store.create("project-phoenix-launch", b"v", {"owner": "label-canary"})
    store.rotate("project-phoenix-launch", b"w")
    store.remove("project-phoenix-launch")
    for path in state_dir.iterdir():  # all connections are closed: the WAL is checkpointed
        data = path.read_bytes()
        assert b"project-phoenix-launch" not in data and b"label-canary" not in data, path.name
