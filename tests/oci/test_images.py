"""Images for the oci runtime: the formats, the store, whiteouts, and hostile layers."""

from __future__ import annotations

import os
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Runner
from tests.oci.conftest import layer_tar, run_ok
from tests.support import busybox

pytestmark = [pytest.mark.runc, pytest.mark.root]

REG, DIR, SYM, LNK = tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE


def _reference(kind: str, tmp_path: Path, layer: Path) -> str:
    if kind == "docker-archive":
        return f"docker-archive:{busybox.docker_archive(tmp_path / 'd.tar', [layer])}"
    if kind == "oci-dir":
        return f"oci:{busybox.oci_layout(tmp_path / 'layout', [layer])}"
    if kind == "oci-tar":
        return f"oci:{busybox.oci_archive(tmp_path / 'o.tar', [layer])}"
    if kind == "oci-gzip":
        return f"oci:{busybox.oci_layout(tmp_path / 'gz', [layer], compress=True)}"
    if kind == "oci-dir-tag":
        return f"oci:{busybox.oci_layout(tmp_path / 't', [layer], tag='v2')}:v2"
    (tmp_path / "rootfs").mkdir()
    subprocess.run(["tar", "-xf", str(layer), "-C", str(tmp_path / "rootfs")], check=True)
    return f"dir:{tmp_path / 'rootfs'}"


@pytest.mark.parametrize(
    "kind", ["docker-archive", "oci-dir", "oci-tar", "oci-gzip", "oci-dir-tag", "dir"]
)
def test_every_format_runs_directly(
    secretd: Runner, tmp_path: Path, rootfs_layer: Path, kind: str
) -> None:
    reference = _reference(kind, tmp_path, rootfs_layer)
    out = run_ok(secretd, "run", "--rm", reference, "cat", "/run/image-owned")
    assert out == "this file belongs to the image\n"


def test_a_missing_tag_is_named(secretd: Runner, tmp_path: Path, rootfs_layer: Path) -> None:
    layout = busybox.oci_layout(tmp_path / "layout", [rootfs_layer], tag="v1")
    result = secretd("run", "--rm", f"oci:{layout}:v9", "true")
    assert result.returncode == 125
    assert "holds 1 images and none is tagged 'v9'" in result.stderr


def test_load_ls_rm_and_the_layer_cache(
    secretd: Runner, busybox_tar: Path, clean_environ: dict[str, Path]
) -> None:
    cache = clean_environ["state"] / "images" / "layers"
    assert run_ok(secretd, "image", "load", "-i", str(busybox_tar), "--name", "tools:1") == (
        "Loaded image: tools:1\n"
    )
    run_ok(secretd, "image", "load", "-i", str(busybox_tar))
    lines = run_ok(secretd, "image", "ls").splitlines()
    assert lines[0].split() == ["NAME", "IMAGE", "ID", "LAYERS", "SIZE"]
    assert [line.split()[0] for line in lines[1:]] == ["busybox:latest", "tools:1"]
    assert len(list(cache.iterdir())) == 1  # one layer, unpacked once for both names

    out = run_ok(secretd, "image", "rm", "busybox")
    assert out == "Untagged: busybox\n"  # tools:1 still needs the layer
    assert len(list(cache.iterdir())) == 1
    assert run_ok(secretd, "run", "--rm", "tools:1", "echo", "ok") == "ok\n"

    out = run_ok(secretd, "image", "rm", "tools:1")
    assert out.splitlines()[1].startswith("Deleted: sha256:")
    assert list(cache.iterdir()) == []
    result = secretd("run", "--rm", "--runtime", "oci", "tools:1", "true")
    assert result.returncode == 125
    assert result.stderr.startswith("secretd: no image 'tools:1' in secretd's image store: load")


def test_whiteouts_and_opaque_directories(
    secretd: Runner, tmp_path: Path, rootfs_layer: Path
) -> None:
    second = layer_tar(tmp_path / "2.tar", [
        ("home/old", REG, "old"), ("var/gone", REG, "x"), ("var/kept", REG, "kept"),
    ])
    third = layer_tar(tmp_path / "3.tar", [
        ("home/.wh..wh..opq", REG, ""), ("home/new", REG, "new"),
        ("var/.wh.gone", REG, ""), ("run/.wh.image-owned", REG, ""),
    ])
    layout = busybox.oci_layout(tmp_path / "layout", [rootfs_layer, second, third])
    out = run_ok(secretd, "run", "--rm", f"oci:{layout}", "sh", "-c",
                 "ls /home; ls /var; ls /run/image-owned 2>&1 || true")
    assert out == "new\nkept\nls: /run/image-owned: No such file or directory\n"


def _refused(secretd: Runner, tmp_path: Path, layer: Path, why: str) -> None:
    """Loading the layer fails with ``why``; the cache holds nothing, not even a temp dir."""
    archive = busybox.docker_archive(tmp_path / "bad.tar", [layer])
    result = secretd("image", "load", "-i", str(archive))
    assert result.returncode == 1, result.stdout
    assert result.stderr.startswith("secretd: image busybox:latest: layer sha256:"), result.stderr
    assert why in result.stderr
    assert len(result.stderr.splitlines()) == 1
    cache = Path(os.environ["SECRETD_STATE_DIR"]) / "images" / "layers"
    assert not cache.exists() or list(cache.iterdir()) == []
    assert run_ok(secretd, "image", "ls", "-q") == ""
    result = secretd("run", "--rm", f"docker-archive:{archive}", "true")
    assert result.returncode == 125 and why in result.stderr


@pytest.fixture
def outside() -> Iterator[Path]:
    """A path a hostile layer aims at; it must never appear."""
    path = Path("/tmp") / f"secretd-escape-{uuid.uuid4().hex}"
    yield path
    assert not path.exists() and not path.is_symlink(), f"a layer wrote {path}"


def test_dot_dot_members_are_refused(secretd: Runner, tmp_path: Path, outside: Path) -> None:
    name = "../" * 12 + str(outside).lstrip("/")
    layer = layer_tar(tmp_path / "l.tar", [("ok", REG, "fine"), (name, REG, "escaped")])
    _refused(secretd, tmp_path, layer, "climbs out with '..'")


def test_absolute_members_are_refused(secretd: Runner, tmp_path: Path, outside: Path) -> None:
    layer = layer_tar(tmp_path / "l.tar", [(str(outside), REG, "escaped")])
    _refused(secretd, tmp_path, layer, "is an absolute path")


def test_device_nodes_are_refused(secretd: Runner, tmp_path: Path) -> None:
    layer = layer_tar(tmp_path / "l.tar", [("dev/mem", tarfile.CHRTYPE, "")])
    _refused(secretd, tmp_path, layer, "is a device node")


def test_symlinks_pointing_outside_are_refused(secretd: Runner, tmp_path: Path) -> None:
    layer = layer_tar(tmp_path / "l.tar", [("etc/evil", SYM, "../../../../etc/shadow")])
    _refused(secretd, tmp_path, layer, "is a symlink to '../../../../etc/shadow', outside")


def test_writing_through_a_symlink_is_refused(
    secretd: Runner, tmp_path: Path, outside: Path
) -> None:
    layer = layer_tar(tmp_path / "l.tar", [
        ("hop", SYM, str(outside.parent)), (f"hop/{outside.name}", REG, "escaped"),
    ])
    _refused(secretd, tmp_path, layer, "goes through 'hop', which is not a directory")


def test_hard_links_outside_the_layer_are_refused(secretd: Runner, tmp_path: Path) -> None:
    layer = layer_tar(tmp_path / "l.tar", [("passwd", LNK, "/etc/passwd")])
    _refused(secretd, tmp_path, layer, "hard link target '/etc/passwd' is an absolute path")
    layer = layer_tar(tmp_path / "m.tar", [("passwd", LNK, "etc/passwd")])
    _refused(secretd, tmp_path, layer, "which is not in this layer")


def test_a_wrong_digest_is_refused(secretd: Runner, tmp_path: Path, rootfs_layer: Path) -> None:
    files = busybox.docker_files([rootfs_layer])
    name = next(n for n in files if n.endswith("layer.tar"))
    data = bytearray(files[name])
    data[len(data) // 2] ^= 0xFF
    files[name] = bytes(data)
    archive = busybox.write_tar(tmp_path / "bad.tar", files)
    result = secretd("image", "load", "-i", str(archive))
    assert result.returncode == 1
    assert "does not match its digest or size" in result.stderr
    assert "load it again from a good copy" in result.stderr
    cache = tmp_path / "state" / "images" / "layers"
    assert not cache.exists() or list(cache.iterdir()) == []


def test_a_truncated_layer_is_refused(secretd: Runner, tmp_path: Path, rootfs_layer: Path) -> None:
    cut = tmp_path / "cut.tar"
    cut.write_bytes(rootfs_layer.read_bytes()[: rootfs_layer.stat().st_size // 2])
    _refused(secretd, tmp_path, cut, "is not a complete tar (unexpected end of data)")


def test_a_layer_without_its_end_marker_is_refused(secretd: Runner, tmp_path: Path) -> None:
    layer = layer_tar(tmp_path / "l.tar", [("a", REG, "x" * 600)], end=False)
    _refused(secretd, tmp_path, layer, "is truncated (no end-of-archive marker)")
