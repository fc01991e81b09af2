"""Reading images out of OCI image layouts and ``docker save`` archives.

Either may be a directory or a tar. Every JSON document reached through a digest (the
index's manifests, their configs) is checked against that digest before it is believed;
layers are checked when they are unpacked (layers.py). Images for another platform are
refused, and a tag picks one image where a file holds several.

The files come from someone else: each JSON document is read up to a size cap and every
value is checked for its type before it is used, an index is read once per manifest
however often it lists it, and indexes nest only so deep. Anything else is one
``ImageError`` line, never a traceback.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

from .base import DAMAGED_HINT, ImageError, full_name
from .layers import Blob

DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
ARCHES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le"}
MAX_JSON = 8 << 20  # bytes of one index, manifest or config
MAX_INDEX_DEPTH = 4  # an index of indexes of ...: real ones nest once
MAX_IMAGES = 4096  # distinct (manifest, name) pairs in one file
KINDS = {dict: "an object", list: "a list", str: "a string", int: "a number"}
PLURALS = {dict: "objects", list: "lists", str: "strings", int: "numbers"}
T = TypeVar("T")


def _arch() -> str:
    machine = os.uname().machine
    return ARCHES.get(machine, machine)


@dataclass(frozen=True)
class Manifest:
    """One image found in a layout or archive, its config verified."""

    names: tuple[str, ...]
    id: str
    config: dict[str, Any]
    blobs: tuple[Blob, ...]


def _get(data: Mapping[str, Any], key: str, kind: type[T], where: str) -> T | None:
    """``data[key]`` if it is a ``kind`` (None when missing or null).

    Raises:
        ImageError: it is something else.
    """
    value = data.get(key)
    if value is None or (isinstance(value, kind) and not isinstance(value, bool)):
        return value
    raise ImageError(f"{where}: {key!r} is not {KINDS[kind]}", DAMAGED_HINT)


def _items(data: Mapping[str, Any], key: str, kind: type[T], where: str) -> list[T]:
    """``data[key]``, a list whose every item is a ``kind`` ([] when missing)."""
    items = _get(data, key, list, where) or []
    if not all(isinstance(item, kind) and not isinstance(item, bool) for item in items):
        raise ImageError(f"{where}: {key!r} is not a list of {PLURALS[kind]}", DAMAGED_HINT)
    return items


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ImageError(f"{where} is not a JSON object", DAMAGED_HINT)
    return value


class Source:
    """Files of an OCI layout or a docker archive, whether a directory or a tar."""

    def __init__(self, path: Path) -> None:
        import tarfile

        self.path = path
        self.where = repr(str(path))
        self.tar: tarfile.TarFile | None = None
        self._documents: dict[tuple[str, str | None], Any] = {}
        if not path.is_dir():
            try:
                self.tar = tarfile.open(path, "r:*")
                self.members = {m.name.removeprefix("./"): m for m in self.tar if m.isreg()}
            except FileNotFoundError:
                raise ImageError(f"image file {self.where} does not exist") from None
            except (OSError, tarfile.TarError, EOFError, ValueError) as exc:
                self.close()
                raise ImageError(f"cannot read image file {self.where}: {exc}") from None

    def has(self, name: str) -> bool:
        return name in self.members if self.tar else (self.path / name).is_file()

    def opener(self, name: str) -> Callable[[], IO[bytes]]:
        if (not isinstance(name, str) or "\0" in name or ".." in name.split("/")
                or name.startswith("/") or not self.has(name)):
            raise ImageError(f"{self.where} has no file {str(name)[:200]!r}",
                             "the image is incomplete")
        if self.tar is None:
            return lambda: self._open_file(name)
        tar, member = self.tar, self.members[name]

        def open_member() -> IO[bytes]:
            data = tar.extractfile(member)
            assert data is not None  # a regular member always has data
            return data

        return open_member

    def _open_file(self, name: str) -> IO[bytes]:
        """A regular file of a layout directory: no symlink, no FIFO that would block."""
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(self.path / name, flags)
        except OSError as exc:
            raise ImageError(f"cannot read {name!r} in {self.where}: {exc.strerror}",
                             "the image is incomplete") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise ImageError(f"{name!r} in {self.where} is not a regular file",
                             "the image is incomplete")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")

    def json(self, name: str, digest: str | None = None) -> Any:
        """The JSON document ``name``, checked against ``digest`` when one names it; read
        once however often an index refers to it.

        Raises:
            ImageError: missing, too big, not JSON, or not what its digest says.
        """
        key = (name, digest)
        if key not in self._documents:
            self._documents[key] = self._read_json(name, digest)
        return self._documents[key]

    def _read_json(self, name: str, digest: str | None) -> Any:
        with self.opener(name)() as fh:
            raw = fh.read(MAX_JSON + 1)
        if len(raw) > MAX_JSON:
            raise ImageError(f"{name!r} in {self.where} is larger than {MAX_JSON} bytes",
                             DAMAGED_HINT)
        if digest is not None and "sha256:" + hashlib.sha256(raw).hexdigest() != digest:
            raise ImageError(
                f"{name!r} in {self.where} does not match its digest",
                "the image file is damaged or was altered: use a good copy",
            )
        try:
            return json.loads(raw)
        except (ValueError, RecursionError):
            raise ImageError(f"{name!r} in {self.where} is not valid JSON", DAMAGED_HINT) \
                from None

    def close(self) -> None:
        if self.tar is not None:
            self.tar.close()


def _blob_path(digest: Any) -> str:
    if not isinstance(digest, str) or not DIGEST_RE.fullmatch(digest):
        raise ImageError(f"unsupported digest {str(digest)[:80]!r}", "only sha256 is known")
    return "blobs/sha256/" + digest.partition(":")[2]


def _check_platform(config: Mapping[str, Any], where: str) -> None:
    arch = _arch()
    system = _get(config, "os", str, where) or "linux"
    machine = _get(config, "architecture", str, where) or arch
    if system != "linux" or machine != arch:
        raise ImageError(
            f"{where} is built for {system[:40]}/{machine[:40]}, this host runs linux/{arch}",
            "use an image for this platform",
        )


def _diff_ids(config: Mapping[str, Any], count: int, where: str) -> list[str]:
    rootfs = _get(config, "rootfs", dict, where) or {}
    diff_ids = _items(rootfs, "diff_ids", str, f"{where}: rootfs")
    if len(diff_ids) != count or not all(DIGEST_RE.fullmatch(d) for d in diff_ids):
        raise ImageError(f"{where}: the config's rootfs.diff_ids do not match its layers")
    return diff_ids


def _ref(entry: Mapping[str, Any], where: str) -> str:
    annotations = _get(entry, "annotations", dict, where) or {}
    for key in ("io.containerd.image.name", "org.opencontainers.image.ref.name"):
        value = _get(annotations, key, str, where)
        if value:
            return value
    return ""


def _for_this_host(entry: Mapping[str, Any], where: str) -> bool:
    platform = _get(entry, "platform", dict, where) or {}
    return (_get(platform, "architecture", str, where) or _arch()) == _arch()


def _oci_manifests(source: Source, stem: str) -> list[Manifest]:
    found: list[Manifest] = []
    index = _object(source.json("index.json"), "index.json")
    pending = [(entry, 0) for entry in _items(index, "manifests", dict, "index.json")]
    seen: set[tuple[str, str]] = set()
    while pending:
        entry, depth = pending.pop(0)
        path = _blob_path(entry.get("digest"))
        digest, ref = "sha256:" + path.rpartition("/")[2], _ref(entry, "index.json")
        if (digest, ref) in seen:
            continue  # listed again (30,000 times, even): one image all the same
        seen.add((digest, ref))
        if len(seen) > MAX_IMAGES:
            raise ImageError(f"{source.where} lists more than {MAX_IMAGES} images", DAMAGED_HINT)
        where = f"manifest {digest[:19]}"
        document = _object(source.json(path, digest), where)
        if entry.get("mediaType") in INDEX_TYPES or "manifests" in document:
            if depth >= MAX_INDEX_DEPTH:
                raise ImageError(f"{source.where}: its indexes nest more than "
                                 f"{MAX_INDEX_DEPTH} deep", DAMAGED_HINT)
            pending += [(m, depth + 1) for m in _items(document, "manifests", dict, where)
                        if _for_this_host(m, where)]
            continue
        name = ref if "/" in ref or ":" in ref else f"{stem}:{ref or 'latest'}"
        config_digest = (_get(document, "config", dict, where) or {}).get("digest")
        config = _object(source.json(_blob_path(config_digest), config_digest),
                         f"image {name}: config")
        layers = _items(document, "layers", dict, where)
        diff_ids = _diff_ids(config, len(layers), f"image {name}")
        blobs = tuple(
            Blob(source.opener(_blob_path(layer.get("digest"))), layer["digest"], diff_id,
                 _get(layer, "size", int, where))
            for layer, diff_id in zip(layers, diff_ids, strict=True)
        )
        found.append(Manifest((name, ref), str(config_digest), config, blobs))
    return found


def _docker_manifests(source: Source) -> list[Manifest]:
    found = []
    entries = source.json("manifest.json")
    if not isinstance(entries, list):
        raise ImageError("manifest.json is not a list", DAMAGED_HINT)
    seen: set[str] = set()
    for entry in entries:
        entry = _object(entry, "manifest.json: an entry")
        key = json.dumps(entry, sort_keys=True)
        if key in seen:
            continue  # listed again: one image all the same
        seen.add(key)
        if len(seen) > MAX_IMAGES:
            raise ImageError(f"{source.where} lists more than {MAX_IMAGES} images", DAMAGED_HINT)
        config_name = _get(entry, "Config", str, "manifest.json") or ""
        named = "sha256:" + Path(config_name).name.removesuffix(".json")
        checked = named if DIGEST_RE.fullmatch(named) else None  # docker save names it so
        config = _object(source.json(config_name, checked), f"{config_name!r}")
        if checked is None:
            with source.opener(config_name)() as fh:
                checked = "sha256:" + hashlib.sha256(fh.read(MAX_JSON)).hexdigest()
        names = tuple(_items(entry, "RepoTags", str, "manifest.json"))
        layers = _items(entry, "Layers", str, "manifest.json")
        diff_ids = _diff_ids(config, len(layers), f"image {names[0] if names else config_name}")
        # The archive names each layer only by its uncompressed content (diff_id):
        # plain or gzip, it is checked against that as it is unpacked.
        blobs = tuple(
            Blob(source.opener(layer), None, diff_id)
            for layer, diff_id in zip(layers, diff_ids, strict=True)
        )
        found.append(Manifest(names, checked, config, blobs))
    return found


def manifests(source: Source, stem: str) -> list[Manifest]:
    """Every image in ``source``; one named only by a tag gets ``stem`` as its name.

    Raises:
        ImageError: not an image file, a digest mismatch, or another platform's image.
    """
    if source.has("index.json"):
        found = _oci_manifests(source, stem)
    elif source.has("manifest.json"):
        found = _docker_manifests(source)
    else:
        raise ImageError(
            f"{source.where} is neither an OCI image layout nor a docker save archive",
            "give a file written by 'docker save', 'podman save' or 'skopeo copy'",
        )
    for manifest in found:
        _check_platform(manifest.config, f"image {manifest.names[0] if manifest.names else ''}")
    return found


def pick(found: list[Manifest], tag: str | None, where: str) -> Manifest:
    """The image ``tag`` names (``v1``, ``name:v1``), or the only (or ``latest``) one.

    Raises:
        ImageError: no image, or more than one, fits.
    """
    if tag is not None:
        matches = [m for m in found if any(n in (tag, full_name(tag)) or
                                           n.endswith(":" + tag) for n in m.names if n)]
    else:
        matches = found if len(found) == 1 else [m for m in found if "latest" in m.names]
    if len(matches) != 1:
        names = ", ".join(n for m in found for n in m.names[:1]) or "none"
        raise ImageError(
            f"{where} holds {len(found)} images and "
            + (f"none is tagged {tag!r}" if tag else "no tag was given"),
            f"add :TAG (images: {names})",
        )
    return matches[0]
