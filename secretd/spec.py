"""The nouns every layer passes to the next: plain, frozen data.

Secret values are ``bytes`` (secrets may be binary) and never appear in a repr, a str or
an exception: the dataclasses below redact them.
"""

from __future__ import annotations

import dataclasses
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .typed import decode

DEFAULT_SECRETS_DIR = "/run/secrets"
DEFAULT_MODE = 0o444
SECRET_TEMPLATE_MODE = 0o400  # a rendered template that read a secret: for its owner only


@dataclass(frozen=True)
class SecretRef:
    """A request for one secret: where it comes from and where it lands.

    ``target`` is relative to the secrets directory unless absolute (a config's is always
    absolute). ``uid``/``gid`` of ``None`` mean "the default owner" (root, or the caller
    inside a user namespace). ``kind`` is ``"secret"`` or ``"config"``: a config lands on a
    tmpfs that allows exec, and ``local:`` reads it from the store's configs.
    """

    name: str
    source: str
    target: str
    uid: int | None = None
    gid: int | None = None
    mode: int = DEFAULT_MODE
    kind: str = "secret"
    refresh: float | None = None  # seconds between checks for a new version (rotation.py)
    max_reads: int | None = None  # opens allowed of its file (a FUSE mount only)
    file_env: str | None = None  # a variable set to the file's path (long syntax file_env=)
    redact: bool = True  # masked in the command's output (redactstream.py); redact=false

    @property
    def scheme(self) -> str:
        return self.source.partition(":")[0]

    @property
    def locator(self) -> str:
        """The provider-specific part of the source URI, after ``scheme:``."""
        return self.source.partition(":")[2]


@dataclass(frozen=True)
class TemplateRef:
    """A template to render into a file: ``source`` is an absolute path to the template,
    ``target`` an absolute path in the container. ``mode`` of ``None``: 0400 if it read a
    secret, else 0444. ``delimiters`` replace ``{{``/``}}`` (Helm and Go files use them)."""

    name: str
    source: str
    target: str
    uid: int | None = None
    gid: int | None = None
    mode: int | None = None
    delimiters: tuple[str, str] | None = None
    kind: str = "template"


@dataclass(frozen=True)
class Secret:
    """A resolved secret. ``tree`` is set instead of a single value for providers that
    materialise a whole directory (one file per key)."""

    name: str
    version: str
    value: bytes = field(repr=False)
    tree: Mapping[str, bytes] | None = field(default=None, repr=False, compare=False)
    lease_id: str | None = field(default=None, repr=False)
    lease_duration: int = 0
    renewable: bool = False

    def __repr__(self) -> str:
        shown = (
            f"<redacted tree of {len(self.tree)} files>"
            if self.tree is not None
            else f"<redacted {len(self.value)} bytes>"
        )
        return f"Secret(name={self.name!r}, version={self.version!r}, value={shown})"

    __str__ = __repr__


@dataclass(frozen=True)
class SecretFile:
    """One file to write into a secrets mount. Files with the same ``group`` (a directory
    target: the files of one tree secret) are replaced together, as one directory."""

    target: str
    value: bytes = field(repr=False)
    uid: int | None = None
    gid: int | None = None
    mode: int = DEFAULT_MODE
    group: str | None = None
    config: bool = False  # on the configs tmpfs, which allows exec (a config may be a script)
    max_reads: int | None = None  # opens allowed before EACCES (a FUSE mount only)

    def __repr__(self) -> str:
        return (
            f"SecretFile(target={self.target!r}, value=<redacted {len(self.value)} bytes>, "
            f"uid={self.uid}, gid={self.gid}, mode={self.mode:#o}, group={self.group!r}, "
            f"config={self.config})"
        )

    __str__ = __repr__


@dataclass(frozen=True)
class SecretMount:
    """The files one run gets: relative targets land in the secrets directory, absolute
    ones at their own path (see mount/tmpfs.py for how they are bound). ``size`` caps the
    tmpfs."""

    files: tuple[SecretFile, ...]
    size: int
    secrets_dir: str = DEFAULT_SECRETS_DIR
    kind: str = "tmpfs"  # or "fuse": served from secretd's memory (mount/fuse.py)

    def relative(self) -> list[SecretFile]:
        return [f for f in self.files if not f.target.startswith("/")]

    def absolute(self) -> list[SecretFile]:
        return [f for f in self.files if f.target.startswith("/")]


@dataclass(frozen=True)
class RunSpec:
    """Everything ``secretd run`` was asked to do, independent of the runtime.

    ``env`` holds the ``-e`` values (already checked by exposure.py); they travel to the
    command's environment, which is exactly why secrets belong in ``secrets`` instead.
    """

    command: tuple[str, ...] = ()
    secrets: tuple[SecretRef, ...] = ()
    configs: tuple[SecretRef, ...] = ()
    templates: tuple[TemplateRef, ...] = ()
    env: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # may hold credentials
    image: str | None = None
    runtime: str = "auto"
    user: str | None = None
    workdir: str | None = None
    name: str | None = None
    secrets_dir: str = DEFAULT_SECRETS_DIR
    file_env: bool = False
    entrypoint: str | None = None
    volumes: tuple[str, ...] = ()
    publish: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    network: str | None = None
    hostname: str | None = None
    restart: str | None = None
    read_only: bool = False
    tty: bool = False
    interactive: bool = False
    detach: bool = False
    remove: bool = False
    # the command's stdout/stderr pass through redact.py; None: unless stdout is a terminal
    redact: bool | None = False
    refresh: float | None = None  # every secret's, unless its reference sets its own
    on_change: str = "none"  # none, signal:NAME, restart or exec:CMD (rotation.py)
    stop_signal: str = "SIGTERM"  # how restart stops the command
    stop_timeout: float = 10.0  # seconds before restart kills it
    mount_type: str = "tmpfs"  # or "fuse" (mount/fuse.py)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def refreshes(self) -> bool:
        """Whether any secret is polled for new versions (``--refresh`` or ``refresh=``)."""
        return self.refresh is not None or any(r.refresh for r in self.secrets + self.configs)

    @classmethod
    def from_json(cls, data: object) -> RunSpec:
        """Rebuild a RunSpec from ``to_json`` output (the daemon's wire format), checking
        every field against its annotation: ``"command": "rm -rf"`` is refused, not taken
        as a list of characters.

        Raises:
            UsageError: an unknown field, or a value of the wrong type (naming the field
                and the type it must have), or a string holding NUL.
        """
        return decode(cls, data, "RunSpec")


Stdio = tuple[int, int, int]  # the command's stdin, stdout and stderr, as file descriptors


class Container(Protocol):
    """A launched command, whatever runs it."""

    id: str

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait until the command ends and return its exit status (128+N if killed by
        signal N), or ``None`` if ``timeout`` seconds passed first."""
        ...

    def update(self, files: tuple[SecretFile, ...]) -> None:
        """Replace the secret files while the command runs (rotation, re-issued leases)."""
        ...

    def signal(self, signum: signal.Signals) -> None: ...

    def remove(self) -> None:
        """Release everything the container holds (idempotent)."""
        ...
