"""A tiny test image from Debian's busybox-static: no registry is reachable here.

``rootfs_tar`` writes a root filesystem as one tar (for ``docker import`` and as an image
layer); other helpers wrap it into an OCI layout or a ``docker save`` archive.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

BUSYBOX = Path("/bin/busybox")
DIRS = ("bin", "dev", "etc", "proc", "sys", "tmp", "run", "root", "home", "var", "usr")
ETC = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n"
    "app:x:1000:1000:app:/home/app:/bin/sh\n",
    "etc/group": "root:x:0:\nnogroup:x:65534:\napp:x:1000:\n",
    "etc/hostname": "busybox\n",
    "run/image-owned": "this file belongs to the image\n",
}


def applets() -> list[str]:
    out = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True, check=True)
    return [name for name in out.stdout.split() if name and name != "busybox"]


def rootfs_tar(path: Path) -> Path:
    """Write a busybox root filesystem as an uncompressed tar (deterministic)."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name in DIRS:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = (
                tarfile.DIRTYPE,
                0o1777 if name == "tmp" else 0o755,
                0,
            )
            tar.addfile(info)
        data = BUSYBOX.read_bytes()
        info = tarfile.TarInfo("bin/busybox")
        info.size, info.mode, info.mtime = len(data), 0o755, 0
        tar.addfile(info, io.BytesIO(data))
        for applet in applets():
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname, link.mode, link.mtime = tarfile.SYMTYPE, "busybox", 0o777, 0
            tar.addfile(link)
        for name, text in ETC.items():
            raw = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(raw), 0o644, 0
            tar.addfile(info, io.BytesIO(raw))
    return path


def available() -> bool:
    return BUSYBOX.is_file() and shutil.which("tar") is not None


# --- images: an OCI layout (dir or tar) or a `docker save` archive around layer tars -------

PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def image_config(
    diff_ids: list[str], config: dict[str, object] | None = None
) -> dict[str, object]:
    """An image config JSON as ``docker inspect`` shows it; ``config`` holds Env,
    Entrypoint, Cmd, WorkingDir and User (the default runs ``sh``)."""
    return {
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": config if config is not None else {"Env": [PATH_ENV], "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": "tests/support/busybox.py"} for _ in diff_ids],
    }


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _blobs(
    layers: list[Path], config: dict[str, object] | None, compress: bool
) -> tuple[bytes, list[tuple[str, bytes]], dict[str, bytes]]:
    """(manifest, [(layer digest, blob)], {digest: blob}) for an OCI layout."""
    raw = [layer.read_bytes() for layer in layers]
    blobs = [gzip.compress(data, mtime=0) if compress else data for data in raw]
    config_blob = _json(image_config([_digest(data) for data in raw], config))
    media = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if compress else "")
    manifest = _json(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": _digest(config_blob),
                "size": len(config_blob),
            },
            "layers": [
                {"mediaType": media, "digest": _digest(blob), "size": len(blob)} for blob in blobs
            ],
        }
    )
    every = {_digest(blob): blob for blob in [config_blob, manifest, *blobs]}
    return manifest, [(_digest(blob), blob) for blob in blobs], every


def oci_files(
    layers: list[Path],
    config: dict[str, object] | None = None,
    tag: str = "latest",
    compress: bool = False,
) -> dict[str, bytes]:
    """The files of an OCI image layout (as skopeo writes it), by relative path."""
    manifest, _, blobs = _blobs(layers, config, compress)
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": _digest(manifest),
                "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    files = {"oci-layout": _json({"imageLayoutVersion": "1.0.0"}), "index.json": _json(index)}
    files.update({f"blobs/sha256/{d.partition(':')[2]}": blob for d, blob in blobs.items()})
    return files


def docker_files(
    layers: list[Path], config: dict[str, object] | None = None, repo_tag: str = "busybox:latest"
) -> dict[str, bytes]:
    """The files of a ``docker save`` archive (Docker 20.10's layout), by relative path."""
    raw = [layer.read_bytes() for layer in layers]
    config_blob = _json(image_config([_digest(data) for data in raw], config))
    config_name = hashlib.sha256(config_blob).hexdigest() + ".json"
    files = {config_name: config_blob}
    names = []
    for data in raw:
        layer_id = hashlib.sha256(data).hexdigest()
        files[f"{layer_id}/layer.tar"] = data
        files[f"{layer_id}/VERSION"] = b"1.0"
        names.append(f"{layer_id}/layer.tar")
    manifest = [{"Config": config_name, "RepoTags": [repo_tag], "Layers": names}]
    files["manifest.json"] = _json(manifest)
    return files


def write_dir(path: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(data)
    return path


def write_tar(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return path


def _default_layers(layers: list[Path] | None, files: Callable[..., dict[str, bytes]],
                    **kwargs: object) -> dict[str, bytes]:
    """``files(layers, **kwargs)``; without layers, the busybox root file system is the one."""
    if layers is not None:
        return files(layers, **kwargs)
    with tempfile.TemporaryDirectory(prefix="busybox-") as tmp:
        return files([rootfs_tar(Path(tmp) / "rootfs.tar")], **kwargs)


def oci_layout(path: Path, layers: list[Path] | None = None, **kwargs: object) -> Path:
    """An OCI image layout directory at ``path`` (see ``oci_files`` for the options)."""
    return write_dir(path, _default_layers(layers, oci_files, **kwargs))


def oci_archive(path: Path, layers: list[Path] | None = None, **kwargs: object) -> Path:
    """An OCI image layout as one tar (``oci-archive``, what ``podman save`` writes)."""
    return write_tar(path, _default_layers(layers, oci_files, **kwargs))


def docker_archive(path: Path, layers: list[Path] | None = None, **kwargs: object) -> Path:
    """A ``docker save`` archive at ``path`` (see ``docker_files`` for the options)."""
    return write_tar(path, _default_layers(layers, docker_files, **kwargs))
