"""Secrets mounts: in-memory filesystems holding exactly the files a run asked for."""

from __future__ import annotations

import dataclasses
import posixpath
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from ..errors import UsageError
from ..spec import (
    DEFAULT_SECRETS_DIR,
    RunSpec,
    Secret,
    SecretFile,
    SecretMount,
    SecretRef,
    TemplateRef,
)
from .tmpfs import HostMount, size_for

R = TypeVar("R", SecretRef, TemplateRef)


def inside(ref: R, secrets_dir: str) -> R:
    """An absolute target in the secrets directory, as the relative target it is: a file of
    the secrets tmpfs. Bound on its own it would need a mount point made inside that
    read-only mount, and would not be replaced with its directory's other files."""
    prefix = secrets_dir.rstrip("/") + "/"
    if prefix != "/" and ref.target.startswith(prefix):
        return dataclasses.replace(ref, target=ref.target[len(prefix) :])
    return ref


def file_env(refs: Sequence[SecretRef], secrets_dir: str) -> tuple[tuple[str, str], ...]:
    """``<NAME>_FILE=<path>`` for each secret (the official images' way): the path the
    command sees, ``secrets_dir`` joined to a relative target."""
    return tuple(
        (
            re.sub(r"[^A-Z0-9_]", "_", ref.name.upper()) + "_FILE",
            posixpath.join(secrets_dir, ref.target),  # an absolute target stays itself
        )
        for ref in refs
    )


def files_for(ref: SecretRef, secret: Secret) -> list[SecretFile]:
    """The files one resolved secret or config becomes: one, or one per key of a tree."""
    config = ref.kind == "config"
    if secret.tree is None:
        return [
            SecretFile(
                ref.target, secret.value, ref.uid, ref.gid, ref.mode, config=config,
                max_reads=ref.max_reads,
            )  # fmt: skip
        ]
    return [
        SecretFile(
            f"{ref.target}/{path}", value, ref.uid, ref.gid, ref.mode, ref.target, config,
            ref.max_reads,
        )  # fmt: skip
        for path, value in sorted(secret.tree.items())
    ]


def plan(
    refs: Sequence[SecretRef],
    secrets: Sequence[Secret],
    extra: Sequence[SecretFile] = (),
    secrets_dir: str = DEFAULT_SECRETS_DIR,
    kind: str = "tmpfs",
) -> SecretMount:
    """Every file of a run: the resolved references', then ``extra`` (rendered templates)."""
    files = tuple(f for ref, s in zip(refs, secrets, strict=True) for f in files_for(ref, s))
    files += tuple(extra)
    return SecretMount(files=files, size=size_for(files), secrets_dir=secrets_dir, kind=kind)


MOUNT_TYPES = ("tmpfs", "fuse")


def check_type(spec: RunSpec, runtime: str) -> None:
    """Refuse, before anything starts, a mount type that cannot serve this run on
    ``runtime`` (the runtime's name, as chosen for it).

    Raises:
        UsageError: an unknown type; ``max_reads=`` without FUSE; FUSE with ``-d`` or
            without a sandbox (``--no-sandbox``).
        MountError: FUSE is unavailable here (``/dev/fuse``, libfuse or fusepy missing).
    """
    if spec.mount_type not in MOUNT_TYPES:
        raise UsageError(
            f"unknown mount type {spec.mount_type!r}", f"use one of {', '.join(MOUNT_TYPES)}"
        )
    limited = [ref.name for ref in (*spec.secrets, *spec.configs) if ref.max_reads]
    if spec.mount_type != "fuse":
        if limited:
            raise UsageError(
                f"max_reads= of {limited[0]!r} needs a FUSE mount", "add --mount-type fuse"
            )
        return
    if spec.detach:
        raise UsageError(
            "--mount-type fuse serves files only while this secretd runs, not after -d",
            "leave out --mount-type fuse (a tmpfs outlives secretd) or -d",
        )
    if runtime == "host":
        raise UsageError(
            "--mount-type fuse needs the sandbox or a container: --no-sandbox writes files",
            "leave out --no-sandbox, or --mount-type fuse",
        )
    from .fuse import check

    check()


def host_mount(runtime_dir: Path, planned: SecretMount) -> HostMount:
    """The host-side mount image runtimes bind: a tmpfs, or (``kind`` ``"fuse"``) a FUSE
    mount served from this process's memory (mount/fuse.py).

    Raises:
        MountError: it cannot be made; nothing is left behind.
    """
    if planned.kind == "fuse":
        from .fuse import FuseMount

        return FuseMount.create(runtime_dir, planned)
    return HostMount.create(runtime_dir, planned)
