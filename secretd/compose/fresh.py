"""Store rotations into running compose containers: ``secretd secret rotate NAME`` puts
the new value into every compose tmpfs that holds ``local:NAME``.

``secretd compose up`` runs in-process and returns; nothing stays to poll. What stays is
each service's tmpfs on the host, so ``record`` writes ``refs.json`` into its root (a part
never bound into a container): the references of the service's files, without values.
``rotated`` (called by the CLI when it rotated the local store itself, and by the daemon
when it did) finds the tmpfs that use the name, reads the new value through the broker
and replaces the files in place with the atomic paths every run uses: the containers see
it at their next open, through their directory binds. Only local store secrets are
followed: a rotation there is an event secretd sees; other providers have no such event
without a process that polls.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from .. import mount
from ..broker import Broker
from ..errors import SecretdError
from ..mount.atomic import DIR_FLAGS
from ..mount.tmpfs import fill
from ..spec import DEFAULT_SECRETS_DIR, SecretRef
from .plan import Use

log = logging.getLogger(__name__)

REFS_NOTE = "refs.json"
_FIELDS = ("name", "source", "target", "uid", "gid", "mode", "kind")


def record(path: Path, uses: Sequence[Use]) -> None:
    """Note the references of a service's files in its tmpfs (inline content excluded:
    a value, and it never changes)."""
    refs = [
        mount.inside(use.ref(), DEFAULT_SECRETS_DIR) for use in uses if use.source.content is None
    ]
    note = [{key: getattr(ref, key) for key in _FIELDS} for ref in refs]
    (path / REFS_NOTE).write_text(json.dumps(note))


def rotated(runtime_dir: Path, names: set[str], broker: Broker) -> list[str]:
    """Put the store's current value of each of ``names`` into every compose tmpfs under
    ``runtime_dir`` that holds it; the paths of the tmpfs updated. Failures are logged
    (names only) and leave that tmpfs as it was."""
    updated: list[str] = []
    for path, refs in _recorded(runtime_dir):
        using = [
            r for r in refs if r.scheme == "local" and r.kind == "secret" and r.locator in names
        ]
        if not using:
            continue
        try:
            values = broker.resolve(using)
            files = [
                f
                for ref, value in zip(using, values, strict=True)
                for f in mount.files_for(ref, value)
            ]
            fd = os.open(path, DIR_FLAGS)
            try:
                fill(fd, files, (0, 0), DEFAULT_SECRETS_DIR)
            finally:
                os.close(fd)
        except (SecretdError, OSError) as exc:
            what = ", ".join(sorted({r.name for r in using}))
            log.error("cannot put the new %s into compose tmpfs %s: %s", what, path.name, exc)
            continue
        updated.append(str(path))
    return updated


def _recorded(runtime_dir: Path) -> Iterator[tuple[Path, list[SecretRef]]]:
    """Each compose tmpfs with its recorded references."""
    try:
        entries = sorted((runtime_dir / "mounts").iterdir())
    except OSError:  # none yet, or not this user's to read: no compose tmpfs of theirs
        return
    for entry in entries:
        try:
            note = json.loads((entry / REFS_NOTE).read_text())
            refs = [SecretRef(**{key: item[key] for key in _FIELDS}) for item in note]
        except (OSError, ValueError, TypeError, KeyError):  # not a compose tmpfs
            continue
        yield entry, refs
