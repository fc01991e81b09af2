"""Reading images out of OCI image layouts and ``docker save`` archives.

Either may be a directory or a tar. Every JSON document reached through a digest (the
index's manifests, their configs) is checked against that digest before it is believed;
layers are checked when they are unpacked (layers.py). Images for another platform are
refused, and a tag picks one image where a file holds several.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .images import ImageError, full_name
from .layers import Blob, digest_of

DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
ARCHES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le"}


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


class Source:
    """Files of an OCI layout or a docker archive, whether a directory or a tar."""

    def __init__(self, path: Path) -> None:
        import tarfile

        self.path = path
        self.tar: tarfile.TarFile | None = None
        if not path.is_dir():
            try:
                self.tar = tarfile.open(path, "r:*")
                self.members = {m.name.removeprefix("./"): m for m in self.tar if m.isreg()}
            except FileNotFoundError:
                raise ImageError(f"image file {str(path)!r} does not exist") from None
            except (OSError, tarfile.TarError) as exc:
                raise ImageError(f"cannot read image file {str(path)!r}: {exc}") from None

    def has(self, name: str) -> bool:
        return name in self.members if self.tar else (self.path / name).is_file()

    def opener(self, name: str) -> Callable[[], IO[bytes]]:
        if ".." in name.split("/") or name.startswith("/") or not self.has(name):
            raise ImageError(f"{str(self.path)!r} has no file {name!r}", "the image is incomplete")
        if self.tar is None:
            path = self.path / name
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
            return lambda: os.fdopen(os.open(path, flags), "rb")
        tar, member = self.tar, self.members[name]

        def open_member() -> IO[bytes]:
            data = tar.extractfile(member)
            assert data is not None  # a regular member always has data
            return data

        return open_member

    def json(self, name: str, digest: str | None = None) -> Any:
        opener = self.opener(name)
        if digest is not None and digest_of(opener)[0] != digest:
            raise ImageError(
                f"{name!r} in {str(self.path)!r} does not match its digest",
                "the image file is damaged or was altered: use a good copy",
            )
        with opener() as fh:
            try:
                return json.load(fh)
            except ValueError:
                raise ImageError(f"{name!r} in {str(self.path)!r} is not valid JSON") from None

    def close(self) -> None:
        if self.tar is not None:
            self.tar.close()


def _blob_path(digest: str) -> str:
    if not isinstance(digest, str) or not DIGEST_RE.match(digest):
        raise ImageError(f"unsupported digest {str(digest)[:80]!r}", "only sha256 is known")
    return "blobs/sha256/" + digest.partition(":")[2]


def _check_platform(config: Mapping[str, Any], where: str) -> None:
    arch = _arch()
    if config.get("os", "linux") != "linux" or config.get("architecture", arch) != arch:
        raise ImageError(
            f"{where} is built for {config.get('os')}/{config.get('architecture')}, "
            f"this host runs linux/{arch}",
            "use an image for this platform",
        )


def _diff_ids(config: Mapping[str, Any], count: int, where: str) -> list[str]:
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
    valid = all(isinstance(d, str) and DIGEST_RE.match(d) for d in diff_ids)
    if len(diff_ids) != count or not valid:
        raise ImageError(f"{where}: the config's rootfs.diff_ids do not match its layers")
    return list(diff_ids)


def _oci_manifests(source: Source, stem: str) -> list[Manifest]:
    found: list[Manifest] = []
    pending = list(source.json("index.json").get("manifests") or [])
    while pending:
        entry = pending.pop(0)
        digest = str(entry.get("digest"))
        document = source.json(_blob_path(digest), digest)
        if entry.get("mediaType") in INDEX_TYPES or document.get("manifests"):
            arch = _arch()
            pending += [
                m for m in document.get("manifests") or []
                if (m.get("platform") or {}).get("architecture", arch) == arch
            ]
            continue
        annotations = entry.get("annotations") or {}
        ref = annotations.get("io.containerd.image.name") or annotations.get(
            "org.opencontainers.image.ref.name", ""
        )
        name = ref if "/" in ref or ":" in ref else f"{stem}:{ref or 'latest'}"
        config_digest = str((document.get("config") or {}).get("digest"))
        config = source.json(_blob_path(config_digest), config_digest)
        layers = document.get("layers") or []
        diff_ids = _diff_ids(config, len(layers), f"image {name}")
        blobs = tuple(
            Blob(source.opener(_blob_path(layer.get("digest"))), layer["digest"], diff_id,
                 layer.get("size"))
            for layer, diff_id in zip(layers, diff_ids, strict=True)
        )
        found.append(Manifest((name, ref), config_digest, config, blobs))
    return found


def _docker_manifests(source: Source) -> list[Manifest]:
    found = []
    for entry in source.json("manifest.json"):
        config_name = entry.get("Config", "")
        named = "sha256:" + Path(config_name).name.removesuffix(".json")
        checked = named if DIGEST_RE.match(named) else None  # docker save names it by digest
        config = source.json(config_name, checked)
        digest = checked or digest_of(source.opener(config_name))[0]
        names = tuple(entry.get("RepoTags") or ())
        layers = entry.get("Layers") or []
        diff_ids = _diff_ids(config, len(layers), f"image {names[0] if names else config_name}")
        blobs = tuple(
            Blob(source.opener(layer), diff_id, diff_id)
            for layer, diff_id in zip(layers, diff_ids, strict=True)
        )
        found.append(Manifest(names, digest, config, blobs))
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
            f"{str(source.path)!r} is neither an OCI image layout nor a docker save archive",
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
