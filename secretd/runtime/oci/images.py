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
store: one small JSON record per name in ``<state_dir>/images/tags``. Everything an image
says is checked for its type and size before it is used (``ImageConfig.from_json``), and
what its layers may write into the cache is capped (``Limits``).
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
from typing import TYPE_CHECKING, Any

from ...errors import UsageError
from .base import DAMAGED_HINT, ImageError, full_name

if TYPE_CHECKING:
    from ...config import Config
    from .archives import Manifest
    from .layers import Budget

LOCAL_SCHEMES = ("oci:", "docker-archive:", "dir:")
ESCAPES = (("%", "%25"), ("/", "%2F"), (":", "%3A"))
LOAD_HINT = (
    "load it with 'secretd image load -i FILE', or give oci:PATH, docker-archive:PATH or dir:PATH"
)
MAX_WORKDIR_DEPTH = 128
MAX_WORKDIR_LENGTH = 4095  # PATH_MAX, less its NUL
SIZE_RE = re.compile(r"(\d+)\s*([kmgt]?)(i?b)?", re.IGNORECASE)
LIMIT_SETTINGS = {  # Limits field: ([providers.oci] key, environment variable)
    "layer": ("max_layer_size", "SECRETD_OCI_MAX_LAYER_SIZE"),
    "image": ("max_image_size", "SECRETD_OCI_MAX_IMAGE_SIZE"),
}


@dataclass(frozen=True)
class ImageConfig:
    """The part of an image config ``docker run`` honours."""

    env: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    workdir: str = ""
    user: str = ""

    @classmethod
    def from_json(cls, data: Any, where: str = "the image") -> ImageConfig:
        """The image config's ``config`` object, each field checked for its type.

        Raises:
            ImageError: a field of the wrong type, or a WorkingDir no path can be.
        """
        data = data or {}
        if not isinstance(data, Mapping):
            raise ImageError(f"{where}: its config is not a JSON object", DAMAGED_HINT)
        workdir = _text(data, "WorkingDir", where)
        problem = workdir_problem(workdir)
        if problem:
            raise ImageError(f"{where}: its WorkingDir {problem}", "fix the image's WorkingDir")
        return cls(
            env=_texts(data, "Env", where),
            entrypoint=_texts(data, "Entrypoint", where),
            cmd=_texts(data, "Cmd", where),
            workdir=workdir,
            user=_text(data, "User", where),
        )


def _text(data: Mapping[str, Any], key: str, where: str) -> str:
    value = data.get(key)
    if value is None:
        return ""
    if not isinstance(value, str) or "\0" in value:
        raise ImageError(f"{where}: {key} in its config is not a string", DAMAGED_HINT)
    return value


def _texts(data: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = data.get(key)
    if value is None:
        return ()
    if not isinstance(value, list | tuple) or not all(
        isinstance(item, str) and "\0" not in item for item in value
    ):
        raise ImageError(f"{where}: {key} in its config is not a list of strings", DAMAGED_HINT)
    return tuple(value)


def workdir_problem(path: str) -> str | None:
    """Why ``path`` cannot be a working directory (too long or too deep), or None."""
    if len(path.encode(errors="surrogateescape")) > MAX_WORKDIR_LENGTH:
        return f"is longer than {MAX_WORKDIR_LENGTH} bytes"
    if len([part for part in path.split("/") if part not in ("", ".")]) > MAX_WORKDIR_DEPTH:
        return f"is more than {MAX_WORKDIR_DEPTH} directories deep"
    return None


def parse_size(value: object, setting: str) -> int:
    """``8GiB``, ``512M``, ``100k`` or a number of bytes (binary units).

    Raises:
        UsageError: anything else.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    match = SIZE_RE.fullmatch(value.strip()) if isinstance(value, str) else None
    if not match or int(match[1]) == 0:
        raise UsageError(f"{setting} = {str(value)[:40]!r} is not a size",
                         "give bytes or a size such as 512MiB or 8GiB")
    return int(match[1]) << (10 * " kmgt".index(match[2].lower() or " "))


@dataclass(frozen=True)
class Limits:
    """What one image may write into the layer cache: per layer and for all its layers
    (the uncompressed tar's bytes). A 2 MB gzip can hold gigabytes of zeros."""

    layer: int = 8 << 30
    image: int = 32 << 30

    @classmethod
    def from_config(cls, config: Config) -> Limits:
        """``SECRETD_OCI_MAX_LAYER_SIZE``/``_IMAGE_SIZE`` over ``[providers.oci]
        max_layer_size``/``max_image_size``.

        Raises:
            UsageError: a value that is not a size.
        """
        settings = config.provider("oci")
        found: dict[str, int] = {}
        for field, (key, variable) in LIMIT_SETTINGS.items():
            if os.environ.get(variable):
                found[field] = parse_size(os.environ[variable], variable)
            elif key in settings:
                found[field] = parse_size(settings[key], f"[providers.oci] {key}")
        return cls(**found)

    def budget(self, image: str) -> Budget:
        from .layers import Budget

        return Budget(image, self.layer, self.image)


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

    def __init__(self, state_dir: Path, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
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

            path, tag = _split_path(rest, scheme)
            source = Source(path)
            try:
                manifest = pick(manifests(source, path.stem), tag, reference)
                config = ImageConfig.from_json(manifest.config.get("config"), f"image {reference}")
                layers = tuple(self._unpack(manifest, reference))
            finally:
                source.close()
            return Image(reference, manifest.id, config, layers)
        record = self.get(full_name(reference))
        layers = tuple(self.cache / d.partition(":")[2] for d in record.layers)
        if not all(layer.is_dir() for layer in layers):
            raise ImageError(f"image {record.name} has lost layers from the cache",
                             f"load it again ({LOAD_HINT})")
        config = ImageConfig.from_json(record.config, f"image {reference}")
        return Image(reference, record.id, config, layers)

    def _unpack(self, manifest: Manifest, image: str) -> list[Path]:
        """Every layer of ``manifest``, unpacked into the cache within the limits."""
        from .layers import unpack

        budget = self.limits.budget(image)
        return [unpack(blob, self.cache, budget) for blob in manifest.blobs]

    def tag_file(self, name: str) -> Path:
        for char, escaped in ESCAPES:
            name = name.replace(char, escaped)
        return self.tags / (name + ".json")

    def get(self, name: str) -> ImageRecord:
        try:
            return _read_record(self.tag_file(name))
        except FileNotFoundError:
            raise ImageError(f"no image {name!r} in secretd's image store", LOAD_HINT) from None
        except (OSError, ValueError, TypeError, KeyError):
            raise ImageError(f"the store's record of image {name!r} is damaged",
                             f"load it again ({LOAD_HINT})") from None

    def load(self, path: Path, name: str | None = None) -> list[str]:
        """Verify and unpack every image in a layout or archive; returns the names stored.

        Raises:
            UsageError: ``name`` is given for a file holding several images.
            ImageError: the file is not an image, or is damaged or unsafe.
        """
        from .archives import Source, manifests

        source = Source(path)
        try:
            found = manifests(source, path.name.partition(".")[0])
            if name is not None and len(found) != 1:
                raise UsageError(f"{path} holds {len(found)} images", "drop --name to load all")
            stored = []
            for manifest in found:
                names = [full_name(n) for n in ([name] if name else manifest.names[:1]) if n]
                if not names:
                    raise UsageError(f"an image in {path} has no name", "give one with --name")
                config = manifest.config.get("config") or {}
                ImageConfig.from_json(config, f"image {names[0]}")
                layers = self._unpack(manifest, names[0])
                size = sum(_tree_size(layer) for layer in layers)
                for each in names:
                    record = ImageRecord(
                        each, manifest.id, config,
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
        records = []
        for path in self.tags.glob("*.json"):
            try:
                records.append(_read_record(path))
            except (OSError, ValueError, TypeError, KeyError):
                continue  # damaged: 'secretd run' says so for its name
        return sorted(records, key=lambda record: record.name)

    def remove(self, name: str, in_use: set[str]) -> list[str]:
        """Forget ``name`` and delete layers no image and no container (``in_use``, cache
        directory names) needs any more; returns the deleted layer digests."""
        from ...mount.atomic import remove_path
        from .layers import reap_temporary

        record = self.get(full_name(name))
        self.tag_file(record.name).unlink()
        with self.locked(exclusive=True):
            keep = in_use | {d.partition(":")[2] for r in self.records() for d in r.layers}
            reap_temporary(self.cache)
            deleted = []
            for layer in self.cache.iterdir() if self.cache.is_dir() else ():
                if layer.name not in keep:
                    remove_path(layer)
                    deleted.append("sha256:" + layer.name)
            return deleted


def _read_record(path: Path) -> ImageRecord:
    """A tag record, each field of the type secretd wrote.

    Raises:
        ValueError, TypeError, KeyError: it is damaged.
    """
    data = json.loads(path.read_text())
    record = ImageRecord(**{**data, "layers": tuple(data["layers"])})
    if not (isinstance(record.name, str) and isinstance(record.id, str)
            and isinstance(record.config, dict) and type(record.size) is int
            and all(isinstance(layer, str) for layer in record.layers)):
        raise TypeError(f"{path} holds a field of the wrong type")
    return record


def _tree_size(path: Path) -> int:
    from ...mount.atomic import DIR_FLAGS, tree_size

    fd = os.open(path, DIR_FLAGS)
    try:
        return tree_size(fd)
    finally:
        os.close(fd)
