"""The encrypted local store: secrets sealed at rest in an SQLite database.

``LocalStore`` is the one API for the store: the CLI, the ``local:`` provider and (later)
the daemon call the same methods. Metadata (names, labels, versions, times) is plain
text so listing needs no key; values are sealed by ``sealing`` and opened only on read.

Writes take SQLite's write lock up front (``BEGIN IMMEDIATE``) so concurrent writers
queue instead of failing, and every write commits whole or not at all (WAL).
"""

from __future__ import annotations

import base64
import errno
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .config import Config
from .errors import NotInStore, SecretNotFound, StoreError, UsageError
from .refs import check_name
from .sealing import (
    KEYFILE,
    PASSPHRASE,
    AuthenticationFailed,
    KeyEncryptionKeys,
    Passphrases,
    Wrapping,
    new_key,
    seal,
    sync_dir,
    unseal,
    value_aad,
)

log = logging.getLogger(__name__)

MAX_VALUE = 500 * 1024  # Docker Swarm's limit: values must be smaller than this
DEFAULT_KEEP = 5
SCHEMA_VERSION = 1
BUSY_TIMEOUT = 30.0
NEARLY_FULL = 1 << 20  # bytes free below which an SQLite failure is blamed on space

SCHEMA = (
    "CREATE TABLE keyring (id INTEGER PRIMARY KEY CHECK (id = 1), kind TEXT NOT NULL,"
    " kdf TEXT, wrapped_dek BLOB NOT NULL, updated_at TEXT NOT NULL)",
    "CREATE TABLE secrets (name TEXT PRIMARY KEY, id TEXT NOT NULL UNIQUE,"
    " version INTEGER NOT NULL, labels TEXT NOT NULL, created_at TEXT NOT NULL,"
    " updated_at TEXT NOT NULL)",
    "CREATE TABLE versions (name TEXT NOT NULL, version INTEGER NOT NULL, sealed BLOB NOT NULL,"
    " created_at TEXT NOT NULL, PRIMARY KEY (name, version))",
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)
_COLUMNS = "id, name, version, labels, created_at, updated_at"
# Configs: a table of their own, so no secret command sees them and no name is shared by
# accident. Immutable, as Docker's are (no versions). Added without a schema version: a
# store made before configs existed gets the table on its first 'config create', and an
# older secretd reading a newer store simply never looks at it.
CONFIGS_TABLE = (
    "CREATE TABLE IF NOT EXISTS configs (name TEXT PRIMARY KEY, id TEXT NOT NULL UNIQUE,"
    " labels TEXT NOT NULL, created_at TEXT NOT NULL, sealed BLOB NOT NULL)"
)
_CONFIG_COLUMNS = "id, name, labels, created_at"


class SecretExists(StoreError):
    """``create`` was asked for a name the store already holds."""


@dataclass(frozen=True)
class ConfigInfo:
    """Everything about a stored config except its content."""

    id: str
    name: str
    labels: Mapping[str, str]
    created_at: str

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> ConfigInfo:
        id_, name, labels, created = row
        return cls(str(id_), str(name), json.loads(labels), str(created))


def config_aad(name: str) -> bytes:
    """Associated data for a config's content: no secret's sealed value opens as one."""
    return b"secretd/config/v1\0" + name.encode()


def config_not_found(name: str) -> SecretNotFound:
    return SecretNotFound(
        f"config {name!r} not found in the local store", "see 'secretd config ls'"
    )


@dataclass(frozen=True)
class SecretInfo:
    """Everything about a stored secret except its value."""

    id: str
    name: str
    version: int
    labels: Mapping[str, str]
    created_at: str
    updated_at: str
    versions: tuple[tuple[int, str], ...] = field(default=())  # (version, created_at)

    @classmethod
    def from_row(
        cls, row: tuple[Any, ...], versions: tuple[tuple[int, str], ...] = ()
    ) -> SecretInfo:
        id_, name, version, labels, created, updated = row
        return cls(
            str(id_), str(name), int(version), json.loads(labels), created, updated, versions
        )


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _new_id() -> str:
    return base64.b32encode(os.urandom(16)).decode().lower()[:25]


def not_found(name: str) -> NotInStore:
    return NotInStore(name)


def check_value(name: str, value: bytes) -> bytes:
    """Refuse what Docker Swarm refuses: empty values and values of 500 KiB or more."""
    if not value:
        raise UsageError(
            f"the value for secret {name!r} is empty", "a secret needs at least one byte"
        )
    if len(value) >= MAX_VALUE:
        raise UsageError(
            f"the value for secret {name!r} is 500 KiB or larger",
            f"secrets must be smaller than {MAX_VALUE} bytes (Docker Swarm's limit)",
        )
    return value


def check_labels(labels: Mapping[str, str]) -> dict[str, str]:
    for key in labels:
        if not key or "\0" in key or "\0" in labels[key]:
            raise UsageError(f"invalid label {key!r}", "use --label KEY=VALUE with a non-empty KEY")
    return dict(labels)


class LocalStore:
    """One store database and the key that opens it.

    Args:
        path: the SQLite database (created 0600 on first write, its directory 0700).
        key_file: where the key-encryption key lives when no passphrase is used.
        keep_versions: how many versions ``rotate`` keeps per secret.
        passphrases: where passphrases come from (environment, then terminal).
        keep_open: read through one connection kept open (the daemon: a new connection
            costs more than a read); thread-safe. Each read is a transaction of its own,
            so it sees what other processes wrote; a database replaced by another (a new
            store at the same path) is opened again, and its key unwrapped again.
        busy_timeout: seconds to wait for another process's lock before a StoreError
            (0: none; the daemon's thread that answers quick requests waits for no one).

    The data key is unwrapped once per ``LocalStore``: a daemon holding one pays a
    passphrase's key derivation (scrypt) once, not per request.
    """

    def __init__(
        self,
        path: Path,
        key_file: Path,
        keep_versions: int = DEFAULT_KEEP,
        passphrases: Passphrases | None = None,
        keep_open: bool = False,
        busy_timeout: float = BUSY_TIMEOUT,
    ) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self.keep_versions = keep_versions
        self.keys = KeyEncryptionKeys(key_file, passphrases or Passphrases(), path)
        self.keep_open = keep_open
        self._dek: bytes | None = None
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the database
        self._kept: tuple[sqlite3.Connection, tuple[int, int] | None] | None = None
        self._kept_lock = threading.Lock()
        self._key_lock = threading.Lock()

    @classmethod
    def from_config(
        cls,
        config: Config,
        passphrases: Passphrases | None = None,
        keep_open: bool = False,
        busy_timeout: float = BUSY_TIMEOUT,
    ) -> LocalStore:
        """The store ``[providers.local]`` describes (path, key_file, keep_versions)."""
        settings = config.provider("local")  # types checked by config.SETTINGS
        return cls(
            path=Path(str(settings.get("path") or config.state_dir / "store.db")),
            key_file=Path(str(settings.get("key_file") or config.state_dir / "store.key")),
            keep_versions=int(settings.get("keep_versions", DEFAULT_KEEP)),
            passphrases=passphrases,
            keep_open=keep_open,
            busy_timeout=busy_timeout,
        )

    def list_secrets(self) -> list[SecretInfo]:
        (rows,) = self._select((f"SELECT {_COLUMNS} FROM secrets ORDER BY name", ()))
        return [SecretInfo.from_row(row) for row in rows]

    def inspect(self, name: str) -> SecretInfo:
        check_name(name)
        rows, versions = self._select(
            (f"SELECT {_COLUMNS} FROM secrets WHERE name = ?", (name,)),
            ("SELECT version, created_at FROM versions WHERE name = ? ORDER BY version", (name,)),
        )
        if not rows:
            raise not_found(name)
        return SecretInfo.from_row(rows[0], tuple((int(v), str(t)) for v, t in versions))

    def current_version(self, name: str) -> int:
        """The latest version number: a cheap change check that opens no value."""
        return self.inspect(name).version

    def read(self, name: str, version: int | None = None) -> tuple[int, bytes]:
        """Open the latest (or the given) version of a secret.

        Raises:
            SecretNotFound: no such secret or version.
            StoreError: the store cannot be unlocked, or the ciphertext fails authentication.
        """
        check_name(name)
        (rows,) = self._select(
            (
                "SELECT version, sealed FROM versions WHERE name = ? AND version ="
                " COALESCE(?, (SELECT version FROM secrets WHERE name = ?))",
                (name, version, name),
            )
        )
        if not rows:
            if version is None:
                raise not_found(name)
            raise SecretNotFound(
                f"version {version} of secret {name!r} is not in the local store",
                f"it keeps the last {self.keep_versions}; see 'secretd secret inspect {name}'",
            )
        number, sealed = int(rows[0][0]), bytes(rows[0][1])
        try:
            return number, unseal(self._unlocked(), sealed, value_aad(name, number))
        except AuthenticationFailed:
            raise StoreError(
                f"secret {name!r} failed authentication", "the store is damaged or the key is wrong"
            ) from None

    def create(
        self, name: str, value: bytes, labels: Mapping[str, str] | None = None
    ) -> SecretInfo:
        """Store a new secret at version 1 (initialising the store on first use).

        Raises:
            SecretExists: the name is taken.
        """
        check_name(name)
        check_value(name, value)
        text = json.dumps(check_labels(labels or {}), sort_keys=True)
        dek = self._unlocked(create=True)
        with self._write() as conn:
            now = _now()  # under the write lock, so times follow the order of commits
            if conn.execute("SELECT 1 FROM secrets WHERE name = ?", (name,)).fetchone():
                raise SecretExists(
                    f"secret {name!r} already exists in the local store",
                    f"add a version with 'secretd secret rotate {name}'",
                )
            row = (_new_id(), name, 1, text, now, now)
            conn.execute(f"INSERT INTO secrets ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)", row)
            self._add_version(conn, dek, name, 1, value, now)
        return SecretInfo.from_row(row, ((1, now),))

    def rotate(self, name: str, value: bytes) -> SecretInfo:
        """Add a version; versions older than the last ``keep_versions`` are deleted."""
        check_name(name)
        check_value(name, value)
        if self._keyring() is None:
            raise not_found(name)
        dek = self._unlocked()
        with self._write() as conn:
            now = _now()
            row = conn.execute(f"SELECT {_COLUMNS} FROM secrets WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise not_found(name)
            version = int(row[2]) + 1
            conn.execute(
                "UPDATE secrets SET version = ?, updated_at = ? WHERE name = ?",
                (version, now, name),
            )
            self._add_version(conn, dek, name, version, value, now)
            conn.execute(
                "DELETE FROM versions WHERE name = ? AND version <= ?",
                (name, version - self.keep_versions),
            )
        return SecretInfo.from_row((row[0], name, version, row[3], row[4], now))

    def remove(self, name: str) -> None:
        check_name(name)
        if self._keyring() is None:
            raise not_found(name)
        with self._write() as conn:
            if not conn.execute("DELETE FROM secrets WHERE name = ?", (name,)).rowcount:
                raise not_found(name)
            conn.execute("DELETE FROM versions WHERE name = ?", (name,))

    def list_configs(self) -> list[ConfigInfo]:
        rows = self._config_rows(f"SELECT {_CONFIG_COLUMNS} FROM configs ORDER BY name", ())
        return [ConfigInfo.from_row(row) for row in rows]

    def inspect_config(self, name: str) -> ConfigInfo:
        check_name(name, "config name")
        rows = self._config_rows(f"SELECT {_CONFIG_COLUMNS} FROM configs WHERE name = ?", (name,))
        if not rows:
            raise config_not_found(name)
        return ConfigInfo.from_row(rows[0])

    def read_config(self, name: str) -> bytes:
        """The content of a config.

        Raises:
            SecretNotFound: no such config.
            StoreError: the store cannot be unlocked, or the content fails authentication.
        """
        check_name(name, "config name")
        rows = self._config_rows("SELECT sealed FROM configs WHERE name = ?", (name,))
        if not rows:
            raise config_not_found(name)
        try:
            return unseal(self._unlocked(), bytes(rows[0][0]), config_aad(name))
        except AuthenticationFailed:
            raise StoreError(
                f"config {name!r} failed authentication", "the store is damaged or the key is wrong"
            ) from None

    def create_config(
        self, name: str, value: bytes, labels: Mapping[str, str] | None = None
    ) -> ConfigInfo:
        """Store a config (sealed like a secret: it may still be private to this machine).

        Raises:
            SecretExists: the name is taken by another config.
        """
        check_name(name, "config name")
        if not value or len(value) >= MAX_VALUE:
            raise UsageError(
                f"the content of config {name!r} is empty or 500 KiB or larger",
                f"configs hold 1 to {MAX_VALUE - 1} bytes (Docker Swarm's limit)",
            )
        text = json.dumps(check_labels(labels or {}), sort_keys=True)
        dek = self._unlocked(create=True)
        with self._write() as conn:
            conn.execute(CONFIGS_TABLE)
            if conn.execute("SELECT 1 FROM configs WHERE name = ?", (name,)).fetchone():
                raise SecretExists(
                    f"config {name!r} already exists in the local store",
                    f"configs cannot change: 'secretd config rm {name}', then create it again",
                )
            row = (_new_id(), name, text, _now())
            conn.execute(
                f"INSERT INTO configs ({_CONFIG_COLUMNS}, sealed) VALUES (?, ?, ?, ?, ?)",
                (*row, seal(dek, value, config_aad(name))),
            )
        return ConfigInfo.from_row(row)

    def remove_config(self, name: str) -> None:
        check_name(name, "config name")
        if not self.list_configs() or self._keyring() is None:
            raise config_not_found(name)
        with self._write() as conn:
            if not conn.execute("DELETE FROM configs WHERE name = ?", (name,)).rowcount:
                raise config_not_found(name)

    def _config_rows(self, query: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """Rows from the configs table; none from a store made before configs existed."""
        (table,) = self._select(
            ("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'configs'", ())
        )
        return self._select((query, params))[0] if table else []

    def init(self, passphrase: bool = False, exist_ok: bool = False) -> None:
        """Create the database and its data key, wrapped by a key file or a passphrase.

        The database appears whole or not at all (built under a temporary name, then
        linked into place), so a file at ``path`` is always a store that existed: one that
        is empty or damaged is refused, never silently made anew.

        Raises:
            StoreError: the store exists already (unless ``exist_ok``), or is damaged.
        """
        if not self._present():  # checked first: no prompt, no key file for nothing
            dek = new_key()
            wrapping = self.keys.wrap(dek, PASSPHRASE if passphrase else KEYFILE, replace=False)
            if self._publish(wrapping):
                self._dek = dek
                return  # else another process was quicker: its store is the one
        self._existing_keyring()  # a damaged store says so, whatever the caller asked
        if not exist_ok:
            raise StoreError(
                f"the local store {self.path} already exists",
                "change its key with 'secretd store rekey'",
            )

    def rekey(self, to: str | None = None) -> str:
        """Re-wrap the data key under a new key file or passphrase; values are untouched.

        Args:
            to: ``"keyfile"``, ``"passphrase"`` or ``None`` (a new key of the same kind).

        Returns:
            The kind of key that now protects the store.
        """

        def save(new: Wrapping) -> None:
            with self._write() as conn:
                conn.execute(
                    "UPDATE keyring SET kind = ?, kdf = ?, wrapped_dek = ?, updated_at = ?",
                    (*new, _now()),
                )

        dek, kind = self.keys.rewrap(self._existing_keyring, to, save)
        with self._connect() as conn:  # move the old wrapped key out of the WAL
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._dek = dek
        return kind

    def _unlocked(self, create: bool = False) -> bytes:
        """The data key, unwrapped once per LocalStore (making the store first if asked)."""
        if self._dek is None and create and self._keyring() is None:
            self.init(passphrase=self.keys.passphrases.preset(), exist_ok=True)
        with self._key_lock:  # requests arriving together derive a passphrase's key once
            if self._dek is None:
                self._dek = self.keys.unwrap(self._existing_keyring())
                log.debug("the store's data key is unwrapped")  # a passphrase's scrypt ran
            return self._dek

    def _add_version(
        self, conn: sqlite3.Connection, dek: bytes, name: str, version: int, value: bytes, now: str
    ) -> None:
        sealed = seal(dek, value, value_aad(name, version))
        conn.execute(
            "INSERT INTO versions (name, version, sealed, created_at) VALUES (?, ?, ?, ?)",
            (name, version, sealed, now),
        )

    def _existing_keyring(self) -> Wrapping:
        keyring = self._keyring()
        if keyring is None:
            raise StoreError(f"there is no local store at {self.path}", "run 'secretd store init'")
        return keyring

    def _keyring(self) -> Wrapping | None:
        (rows,) = self._select(("SELECT kind, kdf, wrapped_dek FROM keyring", ()))
        return Wrapping(str(rows[0][0]), rows[0][1], bytes(rows[0][2])) if rows else None

    def _present(self) -> bool:
        """Whether the database exists; one that cannot even be looked for is an error.
        Another database in its place (removed and made anew) has another data key."""
        try:
            found = self.path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return False
        except OSError as exc:
            raise _unusable(self.path, exc) from None
        identity = (found.st_dev, found.st_ino)
        if identity != self._identity:
            if self._identity is not None:
                self._dek = None
            self._identity = identity
        return True

    def _publish(self, wrapping: Wrapping) -> bool:
        """Build a new database under a temporary name, then link it into place.

        Returns:
            False when a database appeared at ``path`` meanwhile (it is kept).
        """
        temp = self.path.with_name(f".{self.path.name}.{os.urandom(6).hex()}.tmp")
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            with self._connect(temp) as conn:
                conn.execute("BEGIN IMMEDIATE")
                for statement in SCHEMA:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO keyring (id, kind, kdf, wrapped_dek, updated_at)"
                    " VALUES (1, ?, ?, ?, ?)",
                    (*wrapping, _now()),
                )
                conn.execute("COMMIT")
            os.link(temp, self.path)
            sync_dir(self.path.parent)
        except FileExistsError:
            return False
        except OSError as exc:
            raise _unusable(self.path, exc) from None
        finally:
            temp.unlink(missing_ok=True)
        return True

    def _select(self, *queries: tuple[str, tuple[Any, ...]]) -> list[list[tuple[Any, ...]]]:
        """Run reads in one snapshot; no rows at all while there is no store yet."""
        if not self._present():
            return [[] for _ in queries]
        with self._reading() as conn:
            self._check_initialised(conn)
            conn.execute("BEGIN")
            try:
                return [conn.execute(query, params).fetchall() for query, params in queries]
            finally:
                conn.execute("COMMIT")

    def _check_initialised(self, conn: sqlite3.Connection) -> None:
        """A database file that holds no store was one once (see ``_publish``): refuse it
        rather than make a new, empty store over every secret it held."""
        if _initialised(conn):
            return
        size = self.path.stat().st_size
        what = "is empty (0 bytes)" if size == 0 else "holds no secretd store"
        raise StoreError(
            f"the local store {self.path} {what}",
            "restore it from a backup, or move it away to start a new, empty store",
        )

    @contextmanager
    def _connect(self, path: Path | None = None) -> Iterator[sqlite3.Connection]:
        """A connection whose SQLite errors become StoreErrors naming the database."""
        conn = self._open(path)
        try:
            with self._translated():
                conn.execute("PRAGMA secure_delete = ON")  # freed pages are zeroed
                yield conn
        finally:
            conn.close()

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """The kept connection (see ``keep_open``), one thread at a time; else a new one.
        A connection that failed is not kept."""
        if not self.keep_open:
            with self._connect() as conn:
                yield conn
            return
        with self._kept_lock:
            try:
                kept = self._kept
                fresh = kept is None or kept[1] != self._identity
                if kept is None or fresh:
                    self._drop_kept()
                    kept = self._kept = (self._open(shared=True), self._identity)
                conn = kept[0]
                with self._translated():
                    if fresh:
                        conn.execute("PRAGMA secure_delete = ON")
                    yield conn
            except BaseException:
                self._drop_kept()
                raise

    def _drop_kept(self) -> None:
        if self._kept is not None:
            self._kept[0].close()
            self._kept = None

    def _open(self, path: Path | None = None, shared: bool = False) -> sqlite3.Connection:
        try:
            uri = f"file:{quote(str(path or self.path))}?mode=rw"  # never create it by accident
            return sqlite3.connect(
                uri,
                uri=True,
                timeout=self.busy_timeout,
                isolation_level=None,
                check_same_thread=not shared,
            )
        except sqlite3.Error as exc:
            raise StoreError(
                f"cannot open the local store {self.path}: {exc}", "check its permissions"
            ) from None

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """SQLite's errors as StoreErrors naming the database and what to do."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            raise StoreError(
                f"the local store {self.path} cannot be used: {exc}", _hint(str(exc), self.path)
            ) from None
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"the local store {self.path} is damaged: {exc}", "restore it from a backup"
            ) from None

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as conn:
            self._check_initialised(conn)
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:  # SQLite may have rolled back on its own already
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")


def _hint(error: str, path: Path) -> str:
    """What to do about an SQLite failure, from its text (sqlite3 has no error codes) and
    the free space left (a full disk often shows as a "disk I/O error": the WAL's shared
    memory file cannot grow)."""
    if "locked" in error or "busy" in error:
        return "another secretd is writing; try again"
    try:
        space = os.statvfs(path.parent)
        full = space.f_bavail * space.f_frsize < NEARLY_FULL
    except OSError:
        full = False
    if full or "full" in error:
        return f"free some space on the filesystem of {path.parent}"
    return "check its permissions"


def _unusable(path: Path, exc: OSError) -> StoreError:
    """The store's directory cannot be used: say which and why, never a traceback."""
    hint = (
        f"free some space on the filesystem of {path.parent}"
        if exc.errno == errno.ENOSPC
        else f"check the permissions of {path.parent}, or set SECRETD_STATE_DIR to a directory"
        " you own"
    )
    return StoreError(f"cannot use the local store {path}: {exc.strerror}", hint)


def _initialised(conn: sqlite3.Connection) -> bool:
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise StoreError("the local store was written by a newer secretd", "upgrade secretd")
    return version == SCHEMA_VERSION
