"""Images for the oci runtime: where they come from, what their config says, and the
unpacked layers overlayfs stacks into a root file system.

An image reference is one of

* ``oci:PATH[:TAG]``: an OCI image layout, a directory or a tar (skopeo, buildah,
  ``podman save --format oci-archive``);
* ``docker-archive:PATH[:TAG]``: a ``docker save`` archive;
* ``dir:PATH``: a root file system directory, used as it is (read-only, under overlayfs);
* ``NAME[:TAG]``: an image in secretd's store, put there by ``secretd image load``.

archives.py reads layouts and archives, layers.py unpacks layers into
``<state_dir>/images/layers/<diff_id>``; this module resolves references and keeps the
store: one small JSON record per name in ``<state_dir>/images/tags``.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import RuntimeError_, UsageError

LOCAL_SCHEMES = ("oci:", "docker-archive:", "dir:")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._/:@-]*$", re.IGNORECASE)
ESCAPES = (("%", "%25"), ("/", "%2F"), (":", "%3A"))
LOAD_HINT = (
    "load it with 'secretd image load -i FILE', or give oci:PATH, docker-archive:PATH or dir:PATH"
)


class ImageError(RuntimeError_):
    """An image or one of its layers cannot be used (missing, damaged or unsafe)."""


@dataclass(frozen=True)
class ImageConfig:
    """The part of an image config ``docker run`` honours."""

    env: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    workdir: str = ""
    user: str = ""

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> ImageConfig:
        data = data or {}
        return cls(
            env=tuple(data.get("Env") or ()),
            entrypoint=tuple(data.get("Entrypoint") or ()),
            cmd=tuple(data.get("Cmd") or ()),
            workdir=data.get("WorkingDir") or "",
            user=data.get("User") or "",
        )


@dataclass(frozen=True)
class Image:
    """A resolved image: its config and its unpacked layers, bottom first."""

    reference: str
    id: str
    config: ImageConfig
    layers: tuple[Path, ...]


def is_local(reference: str, state_dir: Path) -> bool:
    """Whether only the oci runtime can run ``reference``: an image file or directory,
    or a name in secretd's own store (which Docker and Podman cannot see)."""
    if reference.startswith(LOCAL_SCHEMES):
        return True
    try:
        return ImageStore(state_dir).tag_file(full_name(reference)).is_file()
    except UsageError:
        return False


def full_name(name: str) -> str:
    """``busybox`` -> ``busybox:latest``, as Docker reads an untagged name."""
    if not NAME_RE.match(name):
        raise UsageError(f"invalid image name {name!r}", "use letters, digits and . _ / : @ -")
    return name if ":" in name.rpartition("/")[2] else f"{name}:latest"


def _split_path(rest: str, scheme: str) -> tuple[Path, str | None]:
    """``PATH[:TAG]``: the first prefix that exists is the path (paths may hold ':')."""
    if not rest:
        raise UsageError(f"{scheme}: needs a path", f"use {scheme}:PATH[:TAG]")
    for index, char in enumerate(rest):
        if char == ":" and Path(rest[:index]).exists():
            return Path(rest[:index]), rest[index + 1 :] or None
    return Path(rest), None


@dataclass(frozen=True)
class ImageRecord:
    """What the store keeps per name."""

    name: str
    id: str
    config: dict[str, Any]
    layers: tuple[str, ...]
    size: int


class ImageStore:
    """secretd's images: name records plus the shared layer cache, under ``state_dir``."""

    def __init__(self, state_dir: Path) -> None:
        self.root = state_dir / "images"
        self.cache = self.root / "layers"
        self.tags = self.root / "tags"

    @contextmanager
    def locked(self, exclusive: bool = False) -> Iterator[None]:
        """Shared while a run picks layers, exclusive while unused layers are deleted."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    def resolve(self, reference: str) -> Image:
        """The image a ``secretd run`` argument names, its layers unpacked.

        Raises:
            UsageError: the reference is malformed.
            ImageError: the image is missing, damaged, unsafe or for another platform.
        """
        scheme, colon, rest = reference.partition(":")
        if colon and scheme == "dir":
            path = Path(rest).absolute()
            if not path.is_dir():
                raise ImageError(f"dir:{rest} is not a directory", "give a root file system")
            return Image(reference, f"dir:{path}", ImageConfig(), (path,))
        if colon and scheme in ("oci", "docker-archive"):
            from .archives import Source, manifests, pick
            from .layers import unpack

            path, tag = _split_path(rest, scheme)
            source = Source(path)
            try:
                manifest = pick(manifests(source, path.stem), tag, reference)
                layers = tuple(unpack(blob, self.cache) for blob in manifest.blobs)
            finally:
                source.close()
            return Image(reference, manifest.id,
                         ImageConfig.from_json(manifest.config.get("config")), layers)
        record = self.get(full_name(reference))
        layers = tuple(self.cache / d.partition(":")[2] for d in record.layers)
        if not all(layer.is_dir() for layer in layers):
            raise ImageError(f"image {record.name} has lost layers from the cache",
                             f"load it again ({LOAD_HINT})")
        return Image(reference, record.id, ImageConfig.from_json(record.config), layers)

    def tag_file(self, name: str) -> Path:
        for char, escaped in ESCAPES:
            name = name.replace(char, escaped)
        return self.tags / (name + ".json")

    def get(self, name: str) -> ImageRecord:
        try:
            data = json.loads(self.tag_file(name).read_text())
        except FileNotFoundError:
            raise ImageError(f"no image {name!r} in secretd's image store", LOAD_HINT) from None
        return ImageRecord(**{**data, "layers": tuple(data["layers"])})

    def load(self, path: Path, name: str | None = None) -> list[str]:
        """Verify and unpack every image in a layout or archive; returns the names stored.

        Raises:
            UsageError: ``name`` is given for a file holding several images.
            ImageError: the file is not an image, or is damaged or unsafe.
        """
        from .archives import Source, manifests
        from .layers import unpack

        source = Source(path)
        try:
            found = manifests(source, path.name.partition(".")[0])
            if name is not None and len(found) != 1:
                raise UsageError(f"{path} holds {len(found)} images", "drop --name to load all")
            stored = []
            for manifest in found:
                names = [name] if name else [n for n in manifest.names[:1] if n]
                if not names:
                    raise UsageError(f"an image in {path} has no name", "give one with --name")
                layers = [unpack(blob, self.cache) for blob in manifest.blobs]
                size = sum(_tree_size(layer) for layer in layers)
                for each in names:
                    record = ImageRecord(
                        full_name(each), manifest.id, manifest.config.get("config") or {},
                        tuple(b.diff_id for b in manifest.blobs), size,
                    )
                    self._write(record)
                    stored.append(record.name)
            return stored
        finally:
            source.close()

    def _write(self, record: ImageRecord) -> None:
        self.tags.mkdir(mode=0o700, parents=True, exist_ok=True)
        final = self.tag_file(record.name)
        tmp = final.with_name(final.name + ".tmp")
        tmp.write_text(json.dumps(asdict(record)))
        os.replace(tmp, final)

    def records(self) -> list[ImageRecord]:
        if not self.tags.is_dir():
            return []
        records = [json.loads(path.read_text()) for path in self.tags.glob("*.json")]
        return sorted((ImageRecord(**{**r, "layers": tuple(r["layers"])}) for r in records),
                      key=lambda record: record.name)

    def remove(self, name: str, in_use: set[str]) -> list[str]:
        """Forget ``name`` and delete layers no image and no container (``in_use``, cache
        directory names) needs any more; returns the deleted layer digests."""
        import shutil

        from .layers import reap_temporary

        record = self.get(full_name(name))
        self.tag_file(record.name).unlink()
        with self.locked(exclusive=True):
            keep = in_use | {d.partition(":")[2] for r in self.records() for d in r.layers}
            reap_temporary(self.cache)
            deleted = []
            for layer in self.cache.iterdir() if self.cache.is_dir() else ():
                if layer.name not in keep:
                    shutil.rmtree(layer)
                    deleted.append("sha256:" + layer.name)
            return deleted


def _tree_size(path: Path) -> int:
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            total += os.lstat(os.path.join(folder, name)).st_size
    return total
