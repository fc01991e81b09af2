"""Hostile images: any tar member through the layer unpacker, any JSON through the image
loaders. Each either works or raises secretd's own error (``ImageError``, or a
``UsageError`` for a bad name), never another exception; and the unpacker never creates,
changes or removes a file outside the layer it unpacks (a canary directory beside the
cache, aimed at by absolute names, ``..``, symlinks and hard links, is compared before and
after)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from secretd.errors import SecretdError
from secretd.runtime.oci.archives import Source, manifests, pick
from secretd.runtime.oci.images import ImageConfig
from secretd.runtime.oci.layers import TMP_PREFIX, Blob, Budget, unpack

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="layers keep owners: needs root")
SCRATCH = "/dev/shm" if os.path.isdir("/dev/shm") else None  # memory: thousands of mkdirs

# Path pieces the unpacker gives meaning to, mixed with a little of anything.
COMPONENTS = st.sampled_from([
    "a", "b", "etc", "..", ".", "", ".wh.a", ".wh.", ".wh..", ".wh...", ".wh..wh..opq",
    ".wh..wh.plnk", "canary", "x" * 256, "\0", "sub dir", "\udcff",
]) | st.text(max_size=4)
RELATIVE = st.lists(COMPONENTS, min_size=1, max_size=6).map("/".join)
DEEP = st.integers(1, 200).map(lambda n: "/".join(["d"] * n))
WHITEOUTS = st.builds(
    "{}{}".format,
    st.sampled_from(["", "etc/", "a/b/", "./"]),
    st.sampled_from([".wh.", ".wh..", ".wh...", ".wh..wh..opq", ".wh.a", ".wh..wh.plnk",
                     ".wh.kept", ".wh..wh...", ".wh./"]),
)
TYPES = st.sampled_from([
    tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE,
    tarfile.FIFOTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.CONTTYPE, tarfile.GNUTYPE_SPARSE,
    b"Z",
])


SPARSE = st.builds(  # PAX sparse headers (format 1.0): the map comes first in the data
    lambda size, data: ({"GNU.sparse.major": "1", "GNU.sparse.minor": "0",
                         "GNU.sparse.realsize": str(size)}, data),
    st.sampled_from([0, 10, 2**40]),
    st.sampled_from([b"1\n0\n5\nhello", b"2\n0\n1\n9\n1\nab", b"x\n", b""]),
)
Member = tuple[str, bytes, str, int, int, int, bytes, dict[str, str] | None]


def _member(canary: Path) -> st.SearchStrategy[Member]:
    """(name, type, link target, mode, uid, mtime, data, sparse PAX headers); names and
    targets aim at the canary directory (absolute, with ``..`` or through earlier
    members) as often as not."""
    outward = st.sampled_from([
        str(canary), f"{canary}/kept", "../canary/kept", "../../canary", "../" * 8 + "tmp",
        "/etc/passwd", "/",
    ])
    name = RELATIVE | DEEP | WHITEOUTS | outward | st.builds("{}/{}".format, RELATIVE, RELATIVE)
    return st.tuples(
        name,
        TYPES,
        name | st.just(""),
        st.integers(0, 0o7777),
        st.sampled_from([0, 1000, 65534, 2**32 - 1, 2**32 + 1]),
        st.sampled_from([0, 1_700_000_000, -1, 2**40]),
        st.binary(max_size=64),
        st.none() | SPARSE,
    ).map(lambda m: (*m[:6], m[7][1], m[7][0]) if m[7] else (*m[:7], None))


def _tar(members: list[Member]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, link, mode, uid, mtime, data, sparse in members:
            info = tarfile.TarInfo(name)
            info.pax_headers = dict(sparse or {})
            info.type, info.linkname, info.mode = kind, link, mode
            info.uid = info.gid = uid
            info.mtime = mtime
            info.devmajor, info.devminor = 1, 3
            payload = data if kind in (tarfile.REGTYPE, tarfile.AREGTYPE) else b""
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def _snapshot(root: Path) -> dict[str, tuple[int, int, int, bytes]]:
    """Every entry under ``root`` but the layer being unpacked (and its temporary
    directory): type and mode, owner, size, content."""
    found = {}
    for folder, dirs, files in os.walk(root):
        if Path(folder).name == "cache":
            dirs[:] = [d for d in dirs if d == "cached"]
        for name in dirs + files:
            path = Path(folder, name)
            st_ = path.lstat()
            regular = stat.S_ISREG(st_.st_mode)
            content = path.read_bytes() if regular else b""
            found[str(path)] = (st_.st_mode, st_.st_uid, st_.st_size if regular else 0, content)
    return found


@contextmanager
def _place() -> Iterator[tuple[Path, Path]]:
    """A cache holding another image's layer, with a canary directory beside it:
    (cache, canary)."""
    with tempfile.TemporaryDirectory(prefix="secretd-fuzz-", dir=SCRATCH) as tmp:
        base = Path(tmp)
        (base / "cache" / "cached").mkdir(parents=True)
        (base / "cache" / "cached" / "bin").write_text("a layer of another image")
        canary = base / "canary"
        canary.mkdir()
        (canary / "kept").write_text("canary")
        (canary / "sub").mkdir()
        (canary / "sub" / "file").write_text("also canary")
        yield base / "cache", canary


@given(data=st.data(), compress=st.booleans())
def test_any_layer_unpacks_or_is_refused_and_nothing_outside_changes(
    data: st.DataObject, compress: bool
) -> None:
    with _place() as (cache, canary):
        members = data.draw(st.lists(_member(canary), max_size=8), label="members")
        try:
            raw = _tar(members)
        except (ValueError, OverflowError, UnicodeError, tarfile.TarError):
            assume(False)  # tarfile itself cannot write it, so no image can hold it
        blob = gzip.compress(raw, mtime=0) if compress else raw
        diff_id = "sha256:" + hashlib.sha256(raw).hexdigest()
        before = _snapshot(cache.parent)
        budget = Budget("fuzz", 1 << 20, 1 << 20)
        try:
            layer = unpack(Blob(lambda: io.BytesIO(blob), None, diff_id), cache, budget)
        except SecretdError:
            layer = None
        assert _snapshot(cache.parent) == before
        left = sorted(p.name for p in cache.iterdir() if p.name != "cached")
        assert not [name for name in left if name.startswith(TMP_PREFIX)]
        if layer is not None:
            assert left == [layer.name]
            for folder, dirs, files in os.walk(layer):
                for name in dirs + files:
                    mode = Path(folder, name).lstat()
                    if stat.S_ISCHR(mode.st_mode) or stat.S_ISBLK(mode.st_mode):
                        assert stat.S_ISCHR(mode.st_mode) and mode.st_rdev == 0  # whiteouts


def test_a_layer_thousands_of_levels_deep_unpacks_and_is_removed() -> None:
    from secretd.mount.atomic import remove_path

    with _place() as (cache, canary):
        raw = _tar([("/".join(["d"] * 2000) + "/f", tarfile.REGTYPE, "", 0o644, 0, 0, b"x", None)])
        diff_id = "sha256:" + hashlib.sha256(raw).hexdigest()
        layer = unpack(Blob(lambda: io.BytesIO(raw), None, diff_id), cache,
                       Budget("deep", 1 << 20, 1 << 20))
        remove_path(layer)
        assert [p.name for p in cache.iterdir()] == ["cached"]
        assert (canary / "kept").read_text() == "canary"


# --- image JSON -------------------------------------------------------------------------

KEYS = st.sampled_from([
    "manifests", "digest", "mediaType", "config", "layers", "annotations", "platform",
    "architecture", "os", "rootfs", "diff_ids", "size", "Config", "RepoTags", "Layers",
    "Env", "Entrypoint", "Cmd", "WorkingDir", "User", "org.opencontainers.image.ref.name",
])
SCALARS = (st.none() | st.booleans() | st.integers(-2, 2**64) | st.floats(allow_nan=False)
           | st.text(max_size=8) | st.sampled_from(["amd64", "linux", "application/vnd.oci"
                                                     ".image.index.v1+json", "/" * 3, "v1"]))


def _nested(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(inner, max_size=4) | st.dictionaries(KEYS | st.text(max_size=3), inner,
                                                         max_size=5)


def _json(digests: list[str]) -> st.SearchStrategy[Any]:
    """JSON shaped like image documents, whose digests name the blobs that exist."""
    names = [f"{d[7:]}.json" for d in digests] + [f"blobs/sha256/{d[7:]}" for d in digests]
    leaves = SCALARS | (st.sampled_from(digests + names) if digests else st.nothing())
    return st.recursive(leaves, _nested, max_leaves=24)


@given(data=st.data(), docker=st.booleans(), packed=st.booleans(),
       tag=st.none() | st.text(max_size=8))
def test_any_index_manifest_and_config_loads_or_is_refused(
    data: st.DataObject, docker: bool, packed: bool, tag: str | None
) -> None:
    with tempfile.TemporaryDirectory(prefix="secretd-fuzz-", dir=SCRATCH) as tmp:
        root = Path(tmp) / "image"
        (root / "blobs" / "sha256").mkdir(parents=True)
        digests: list[str] = []
        for _ in range(data.draw(st.integers(0, 4), label="blobs")):
            document = data.draw(_json(digests), label="blob")
            raw = json.dumps(document).encode()
            digest = "sha256:" + hashlib.sha256(raw).hexdigest()
            (root / "blobs" / "sha256" / digest[7:]).write_bytes(raw)
            (root / f"{digest[7:]}.json").write_bytes(raw)
            digests.append(digest)
        top = data.draw(_json(digests) | st.binary(max_size=16), label="top")
        raw_top = top if isinstance(top, bytes) else json.dumps(top).encode()
        (root / ("manifest.json" if docker else "index.json")).write_bytes(raw_top)
        if packed:  # the same files as one tar (docker save, podman save --format oci-archive)
            with tarfile.open(Path(tmp) / "image.tar", "w") as tar:
                tar.add(root, arcname=".")
            root = Path(tmp) / "image.tar"
        source = Source(root)
        try:
            found = manifests(source, "fuzz")
            for manifest in found:
                ImageConfig.from_json(manifest.config.get("config"))
            pick(found, tag, "fuzz")
        except SecretdError:
            pass
        finally:
            source.close()


@given(config=_json([]))
def test_any_image_config_is_read_or_refused(config: Any) -> None:
    try:
        image = ImageConfig.from_json(config)
    except SecretdError:
        return
    assert all(isinstance(item, str) for item in image.env + image.entrypoint + image.cmd)
    assert isinstance(image.workdir, str) and isinstance(image.user, str)
