"""The local store's cryptography: AES-256-GCM sealing, data-key wrapping, key files and
passphrases.

Values are sealed under a random data key (DEK) with associated data binding the secret's
name and version, so a ciphertext copied to another row or version does not open. The DEK
is wrapped by a key-encryption key (KEK) that comes from a key file or from a passphrase
through scrypt; re-keying re-wraps the DEK and leaves every value untouched.
"""

from __future__ import annotations

import errno
import fcntl
import getpass
import json
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from .errors import StoreError, UsageError

KEY_BYTES = 32
NONCE_BYTES = 12
PASSPHRASE_VAR = "SECRETD_PASSPHRASE"
NEW_PASSPHRASE_VAR = "SECRETD_NEW_PASSPHRASE"
_DEK_AAD = b"secretd/dek/v1"
KEYFILE, PASSPHRASE = "keyfile", "passphrase"


class AuthenticationFailed(Exception):
    """A ciphertext did not open: wrong key, or the bytes were changed. Carries no data."""


def new_key() -> bytes:
    return os.urandom(KEY_BYTES)


def value_aad(name: str, version: int) -> bytes:
    """Associated data for one version of one secret (names cannot contain NUL)."""
    return b"secretd/value/v1\0" + name.encode() + b"\0" + str(version).encode()


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """Encrypt with a fresh random nonce; returns ``nonce || ciphertext || tag``."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def unseal(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    """Decrypt what ``seal`` made.

    Raises:
        AuthenticationFailed: the key is wrong or any byte changed (without the library's
            exception chained, which is of no use to a user).
    """
    try:
        return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)
    except (InvalidTag, ValueError):
        raise AuthenticationFailed() from None


def wrap_dek(kek: bytes, dek: bytes) -> bytes:
    return seal(kek, dek, _DEK_AAD)


def unwrap_dek(kek: bytes, wrapped: bytes) -> bytes:
    return unseal(kek, wrapped, _DEK_AAD)


@dataclass(frozen=True)
class ScryptParams:
    """scrypt's cost parameters and salt; stored beside the wrapped DEK so they can grow."""

    salt: bytes
    n: int = 2**15
    r: int = 8
    p: int = 1

    @classmethod
    def fresh(cls) -> ScryptParams:
        return cls(salt=os.urandom(16))

    def to_json(self) -> str:
        return json.dumps(
            {"kdf": "scrypt", "salt": self.salt.hex(), "n": self.n, "r": self.r, "p": self.p}
        )

    @classmethod
    def from_json(cls, text: str) -> ScryptParams:
        try:
            data = json.loads(text)
            kdf = data.get("kdf")
            if kdf == "scrypt":
                return cls(salt=bytes.fromhex(data["salt"]), n=data["n"], r=data["r"], p=data["p"])
        except (AttributeError, KeyError, TypeError, ValueError):
            raise StoreError(
                "the local store's passphrase settings are damaged", "restore it from a backup"
            ) from None
        raise StoreError(f"unknown key derivation {kdf!r} in the local store", "upgrade secretd")

    def derive(self, passphrase: str) -> bytes:
        kdf = Scrypt(salt=self.salt, length=KEY_BYTES, n=self.n, r=self.r, p=self.p)
        return kdf.derive(passphrase.encode())


def read_key_file(path: Path) -> bytes:
    """Read a key file; a missing or malformed one is a StoreError naming the file."""
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        raise StoreError(
            f"the local store's key file {path} is missing",
            "restore it from your backup (the store cannot be opened without it)",
        ) from None
    except OSError as exc:
        raise StoreError(f"cannot read the key file {path}: {exc.strerror}") from None
    if len(key) != KEY_BYTES:
        raise StoreError(
            f"the key file {path} is damaged ({len(key)} bytes, a secretd key has {KEY_BYTES})",
            "restore it from your backup (the store cannot be opened without it)",
        )
    return key


def write_key_file(path: Path, key: bytes, exclusive: bool = False) -> None:
    """Write a key file 0600 under a temporary name, then move it into place.

    Args:
        exclusive: keep a key file that is already there (linking instead of renaming), so
            processes that initialise one store at once all end up using the same key.
    """
    temp = path.with_name(f".{path.name}.{os.urandom(6).hex()}.tmp")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            if os.write(fd, key) != len(key):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(temp))
            os.fsync(fd)
        finally:
            os.close(fd)
        if exclusive:
            try:
                os.link(temp, path)
            except FileExistsError:
                pass  # another process made the key first; everyone uses that one
        else:
            os.replace(temp, path)
        sync_dir(path.parent)
    except OSError as exc:
        hint = "free some space on its filesystem" if exc.errno == errno.ENOSPC else None
        raise StoreError(f"cannot write the key file {path}: {exc.strerror}", hint) from None
    finally:
        temp.unlink(missing_ok=True)


def remove_key_file(path: Path) -> None:
    """Overwrite a key file that is no longer needed, then remove it."""
    try:
        with path.open("r+b") as fh:
            fh.write(b"\0" * KEY_BYTES)
            fh.flush()
            os.fsync(fh.fileno())
        path.unlink()
    except FileNotFoundError:
        return


def sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


Prompt = Callable[[str, bool], str]


def tty_prompt(label: str, confirm: bool) -> str:
    """Ask on the controlling terminal; never fall back to stdin, which may carry a value."""
    try:
        os.close(os.open("/dev/tty", os.O_RDWR))
    except OSError:
        raise StoreError(
            "the local store needs a passphrase and there is no terminal to ask on",
            f"set {PASSPHRASE_VAR}",
        ) from None
    first = getpass.getpass(f"{label}: ")
    if confirm and getpass.getpass(f"{label} (again): ") != first:
        raise UsageError("the passphrases do not match", "type the same passphrase twice")
    return first


class Passphrases:
    """Where passphrases come from: the environment first, then the terminal.

    Args:
        environ: holds ``SECRETD_PASSPHRASE`` (and ``SECRETD_NEW_PASSPHRASE`` for rekey).
        prompt: asks the user; tests and the daemon inject their own.
    """

    def __init__(self, environ: Mapping[str, str] | None = None, prompt: Prompt = tty_prompt):
        self._environ = os.environ if environ is None else environ
        self._prompt = prompt

    def preset(self) -> bool:
        """Whether the user asked for a passphrase without being prompted."""
        return bool(self._environ.get(PASSPHRASE_VAR))

    def current(self) -> str:
        return self._environ.get(PASSPHRASE_VAR) or self._prompt(
            "passphrase for the local store", False
        )

    def new(self, variable: str = PASSPHRASE_VAR) -> str:
        passphrase = self._environ.get(variable) or self._prompt(
            "new passphrase for the local store", True
        )
        if not passphrase:
            raise UsageError("the passphrase is empty", "choose a passphrase")
        return passphrase


class Wrapping(NamedTuple):
    """The data key as stored: wrapped by which kind of key, with which KDF parameters."""

    kind: str
    kdf: str | None
    wrapped: bytes


class KeyEncryptionKeys:
    """One store's key-encryption keys: its key file, or its passphrase.

    A key file is replaced through ``<key_file>.new``, written before the database commits
    the re-wrapped data key and renamed after; ``unwrap`` finishes a rename that a crash
    interrupted, so no crash point leaves the store without a key that opens it.

    Args:
        key_file: the key file's path.
        passphrases: where passphrases come from.
        store: the database, named in errors.
    """

    def __init__(self, key_file: Path, passphrases: Passphrases, store: Path) -> None:
        self.key_file = key_file
        self.pending = key_file.with_name(key_file.name + ".new")
        self.passphrases = passphrases
        self._store = store

    def wrap(
        self, dek: bytes, kind: str, replace: bool, variable: str = PASSPHRASE_VAR
    ) -> Wrapping:
        """Wrap ``dek`` under a new passphrase, the existing key file, or (``replace``) a new
        key file waiting at ``pending`` until ``committed``."""
        if kind == PASSPHRASE:
            params = ScryptParams.fresh()
            kek = params.derive(self.passphrases.new(variable))
            return Wrapping(PASSPHRASE, params.to_json(), wrap_dek(kek, dek))
        if replace:
            kek = new_key()
            write_key_file(self.pending, kek)
        else:
            if not self.key_file.exists():
                write_key_file(self.key_file, new_key(), exclusive=True)
            kek = read_key_file(self.key_file)
        return Wrapping(KEYFILE, None, wrap_dek(kek, dek))

    def rewrap(
        self, load: Callable[[], Wrapping], to: str | None, save: Callable[[Wrapping], None]
    ) -> tuple[bytes, str]:
        """Re-wrap the data key (``load`` reads it, ``save`` commits the new wrapping) under
        a new key of kind ``to`` (or of its current kind); one process at a time.

        Returns:
            The data key and the kind of key that now wraps it.
        """
        with self._exclusive():
            old = load()
            dek = self.unwrap(old)
            new = self.wrap(dek, to or old.kind, replace=True, variable=NEW_PASSPHRASE_VAR)
            try:
                save(new)
            except BaseException:
                remove_key_file(self.pending)
                raise
            self._committed(old, new)
        return dek, new.kind

    def _committed(self, old: Wrapping, new: Wrapping) -> None:
        """The database now holds ``new``: put its key file in place or retire the old one."""
        if new.kind == KEYFILE and self.pending.exists():
            os.replace(self.pending, self.key_file)
            sync_dir(self.key_file.parent)
        elif new.kind == PASSPHRASE and old.kind == KEYFILE:
            remove_key_file(self.key_file)

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Serialise re-keying: one process at a time may replace the key (flock on the
        key file's directory, which exists whenever the store does)."""
        self.key_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.key_file.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def unwrap(self, wrapping: Wrapping) -> bytes:
        """Open the data key with the passphrase or the key file.

        Raises:
            StoreError: the passphrase is wrong, or the key file is missing or wrong.
        """
        if wrapping.kind == PASSPHRASE and wrapping.kdf:
            kek = ScryptParams.from_json(wrapping.kdf).derive(self.passphrases.current())
            try:
                return unwrap_dek(kek, wrapping.wrapped)
            except AuthenticationFailed:
                raise StoreError(
                    f"wrong passphrase for the local store {self._store}",
                    f"check {PASSPHRASE_VAR} or type it again",
                ) from None
        found = [p for p in (self.key_file, self.pending) if p.exists()] or [self.key_file]
        for candidate in found:
            try:
                dek = unwrap_dek(read_key_file(candidate), wrapping.wrapped)
            except AuthenticationFailed:
                continue
            if candidate == self.pending:  # a rekey committed, then stopped before its rename
                os.replace(self.pending, self.key_file)
            return dek
        raise StoreError(
            f"the key file {self.key_file} does not open the local store {self._store}",
            "restore the key file the store was made with",
        )
