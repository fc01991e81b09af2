"""Secrets mounts: in-memory filesystems holding exactly the files a run asked for."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from ..spec import Secret, SecretFile, SecretMount, SecretRef
from .tmpfs import size_for


def inside(ref: SecretRef, secrets_dir: str) -> SecretRef:
    """An absolute target in the secrets directory, as the relative target it is: a file of
    the secrets tmpfs. Bound on its own it would need a mount point made inside that
    read-only mount, and would not be replaced with its directory's other files."""
    prefix = secrets_dir.rstrip("/") + "/"
    if prefix != "/" and ref.target.startswith(prefix):
        return dataclasses.replace(ref, target=ref.target[len(prefix) :])
    return ref


def files_for(ref: SecretRef, secret: Secret) -> list[SecretFile]:
    """The files one resolved secret becomes: one, or one per key of a tree."""
    if secret.tree is None:
        return [SecretFile(ref.target, secret.value, ref.uid, ref.gid, ref.mode)]
    return [
        SecretFile(f"{ref.target}/{path}", value, ref.uid, ref.gid, ref.mode, group=ref.target)
        for path, value in sorted(secret.tree.items())
    ]


def plan(refs: Sequence[SecretRef], secrets: Sequence[Secret]) -> SecretMount:
    files = tuple(f for ref, s in zip(refs, secrets, strict=True) for f in files_for(ref, s))
    return SecretMount(files=files, size=size_for(files))
