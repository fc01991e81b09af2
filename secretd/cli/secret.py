"""``secretd secret`` and ``secretd store``: administration of the encrypted local store.

Shaped like ``docker secret``. Values come from a file or stdin, never from argv (which
every user of the machine can read in ``/proc``), and no command prints a stored value.
"""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from ..client import DaemonStore, daemon_store
from ..errors import NotInStore, SecretNotFound, UsageError, close_names
from ..refs import check_name
from ..sealing import KEYFILE, PASSPHRASE
from ..store import MAX_VALUE, LocalStore, SecretInfo
from . import AppContext
from .output import echo_table

HEADER = ("NAME", "VERSION", "CREATED", "UPDATED", "LABELS")


def _store(app: AppContext) -> LocalStore:
    return LocalStore.from_config(app.config)


def _secrets(app: AppContext) -> LocalStore | DaemonStore:
    """The daemon's store when a daemon answers (see client.py), else the local one."""
    return daemon_store(app.config) or _store(app)


def read_value(source: str | None, name: str) -> bytes:
    """The value from FILE, or from stdin for ``-`` or nothing (asked, hidden, on a TTY).

    At most ``MAX_VALUE`` bytes are read: the store refuses that much anyway.
    """
    if source in (None, "-"):
        if sys.stdin.isatty():
            return getpass.getpass(f"value for {name}: ").encode()
        return sys.stdin.buffer.read(MAX_VALUE)
    try:
        with open(source, "rb") as fh:
            return fh.read(MAX_VALUE)
    except OSError as exc:
        raise UsageError(
            f"cannot read {source!r}: {exc.strerror}", "give a readable file, or - for stdin"
        ) from None


def parse_labels(items: Iterable[str]) -> dict[str, str]:
    """``KEY=VALUE`` pairs; a bare ``KEY`` means an empty value, as in Docker."""
    labels: dict[str, str] = {}
    for item in items:
        key, _, value = item.partition("=")
        if not key:
            raise UsageError(f"invalid label {item!r}", "use --label KEY=VALUE")
        labels[key] = value
    return labels


@contextmanager
def _suggesting(store: LocalStore | DaemonStore, name: str) -> Iterator[None]:
    """A missing ``name`` is reported with the close names the caller may list (through
    the daemon: only those its policy shows the caller)."""
    try:
        yield
    except SecretNotFound:  # the daemon's reply is a SecretNotFound: same line, no name
        hint = close_names(name, (info.name for info in store.list_secrets()))
        raise NotInStore(name, hint) from None


def _for_each(
    store: LocalStore | DaemonStore, names: Iterable[str], action: Callable[[str], None]
) -> None:
    """Apply ``action`` to every name, then report all the missing ones in one line."""
    names = [check_name(name) for name in names]
    missing = []
    for name in names:
        try:
            action(name)
        except SecretNotFound:
            missing.append(name)
    if len(missing) == 1:
        with _suggesting(store, missing[0]):
            raise NotInStore(missing[0])
    if missing:
        raise SecretNotFound(
            f"secrets {', '.join(map(repr, missing))} not found in the local store",
            "see 'secretd secret ls'",
        )


def _ls_row(info: SecretInfo) -> tuple[str, ...]:
    labels = ",".join(f"{key}={value}" for key, value in sorted(info.labels.items()))
    seconds = (info.created_at[:19] + "Z", info.updated_at[:19] + "Z")
    return (info.name, str(info.version), *seconds, labels)


def _ls_json(info: SecretInfo) -> dict[str, Any]:
    return {
        "ID": info.id,
        "Name": info.name,
        "Version": info.version,
        "CreatedAt": info.created_at,
        "UpdatedAt": info.updated_at,
        "Labels": dict(info.labels),
    }


def inspect_json(info: SecretInfo) -> dict[str, Any]:
    """Metadata in the shape of ``docker secret inspect``, plus the kept versions."""
    return {
        "ID": info.id,
        "Version": {"Index": info.version},
        "CreatedAt": info.created_at,
        "UpdatedAt": info.updated_at,
        "Spec": {"Name": info.name, "Labels": dict(info.labels)},
        "Versions": [{"Index": number, "CreatedAt": at} for number, at in info.versions],
    }


@click.group()
def secret() -> None:
    """Manage secrets in the encrypted local store (shaped like 'docker secret')."""


@secret.command()
@click.argument("name")
@click.argument("file", required=False, metavar="[FILE|-]")
@click.option("-l", "--label", "labels", multiple=True, metavar="KEY=VALUE", help="Add a label.")
@click.pass_obj
def create(app: AppContext, name: str, file: str | None, labels: tuple[str, ...]) -> None:
    """Create secret NAME from FILE or stdin (never from the command line).

    \b
    printf %s 's3cr3t' | secretd secret create api_key -
    secretd secret create tls_key ./server.key --label env=prod
    """
    check_name(name)
    parsed = parse_labels(labels)
    click.echo(_secrets(app).create(name, read_value(file, name), parsed).name)


@secret.command()
@click.option(
    "--notify",
    is_flag=True,
    help="Store nothing: tell the daemon's runs using NAME to read it again now.",
)
@click.argument("name")
@click.argument("file", required=False, metavar="[FILE|-]")
@click.pass_obj
def rotate(app: AppContext, notify: bool, name: str, file: str | None) -> None:
    """Add a new version of NAME from FILE or stdin; older versions beyond the last few
    (keep_versions, default 5) are deleted. A running daemon puts it into every run
    using NAME at once (docs/rotation.md).

    With --notify, NAME's provider (Vault, AWS, a file) already has the new value: the
    daemon's runs using NAME read it again now instead of at their next refresh."""
    check_name(name)
    if notify:
        _notify(app, name, file)
        return
    store = _secrets(app)
    with _suggesting(store, name):
        info = store.rotate(name, read_value(file, name))
    click.echo(f"{info.name}: version {info.version}")
    if isinstance(store, LocalStore):  # else the daemon did this too
        from ..broker import Broker
        from ..compose import fresh

        fresh.rotated(app.config.runtime_dir, {name}, Broker(app.config))


def _notify(app: AppContext, name: str, file: str | None) -> None:
    from .. import client
    from ..protocol import request

    if file is not None:
        raise UsageError("--notify takes no value", f"secretd secret rotate --notify {name}")
    reply = client.call(app.config, request("rotate", names=[name]))
    if reply is None:
        raise UsageError(
            "no secretd daemon answers, so no run is waiting to be told",
            "start it with 'secretd daemon'; runs with --refresh see new versions themselves",
        )
    click.echo(f"{name}: {len(reply['runs'])} runs notified")


@secret.command("ls")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.option("-q", "--quiet", is_flag=True, help="Only print names.")
@click.pass_obj
def list_(app: AppContext, fmt: str, quiet: bool) -> None:
    """List secrets: names, versions, times and labels (never values)."""
    secrets = _secrets(app).list_secrets()
    if quiet:
        for info in secrets:
            click.echo(info.name)
    elif fmt == "json":
        click.echo(json.dumps([_ls_json(info) for info in secrets], indent=2))
    else:
        echo_table(HEADER, (_ls_row(info) for info in secrets))


@secret.command()
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@click.pass_obj
def inspect(app: AppContext, names: tuple[str, ...]) -> None:
    """Show the metadata of secrets as JSON, like 'docker secret inspect' (never values)."""
    store, found = _secrets(app), []

    def add(name: str) -> None:
        found.append(inspect_json(store.inspect(name)))

    try:
        _for_each(store, names, add)
    finally:
        if found:
            click.echo(json.dumps(found, indent=4))


@secret.command()
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@click.pass_obj
def rm(app: AppContext, names: tuple[str, ...]) -> None:
    """Remove secrets and all their versions."""
    store = _secrets(app)

    def remove(name: str) -> None:
        store.remove(name)
        click.echo(name)

    _for_each(store, names, remove)


@click.group()
def store() -> None:
    """Initialise or re-key the encrypted local store."""


def _protection(store: LocalStore, kind: str) -> str:
    if kind == PASSPHRASE:
        return "protected by a passphrase"
    return f"protected by the key file {store.keys.key_file} (back it up: it opens the store)"


@store.command()
@click.option(
    "--passphrase",
    is_flag=True,
    help="Use a passphrase (SECRETD_PASSPHRASE, or asked) instead of a key file.",
)
@click.pass_obj
def init(app: AppContext, passphrase: bool) -> None:
    """Create the local store (the first 'secret create' does this with a key file)."""
    local = _store(app)
    local.init(passphrase=passphrase)
    kind = PASSPHRASE if passphrase else KEYFILE
    click.echo(f"created the local store {local.path}, {_protection(local, kind)}")


@store.command()
@click.option("--passphrase", is_flag=True, help="Switch to (or change) a passphrase.")
@click.option("--key-file", is_flag=True, help="Switch to (or replace) a key file.")
@click.pass_obj
def rekey(app: AppContext, passphrase: bool, key_file: bool) -> None:
    """Re-wrap the store's data key under a new key; values are not re-encrypted.

    The current passphrase comes from SECRETD_PASSPHRASE (or is asked), a new one from
    SECRETD_NEW_PASSPHRASE (or is asked twice). Without an option, the key is replaced by
    a new one of the same kind.
    """
    if passphrase and key_file:
        raise UsageError("--passphrase and --key-file exclude each other", "choose one")
    local = _store(app)
    kind = local.rekey(PASSPHRASE if passphrase else KEYFILE if key_file else None)
    click.echo(f"re-keyed the local store {local.path}, {_protection(local, kind)}")
