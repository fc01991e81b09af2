"""Hostile images and containers against the image store, the layer cache and cleanup:
whiteouts of ``..``, trees thousands of levels deep, FIFOs where files are expected,
decompression bombs, repetitive indexes and malformed JSON (issue 11)."""

from __future__ import annotations

import gzip
import json
import signal
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from secretd.mount.atomic import remove_path
from tests.conftest import Runner
from tests.oci.conftest import layer_tar, mounts_under, run_ok
from tests.support import busybox
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.runc, pytest.mark.root]

REG, DIR, FIFO = tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.FIFOTYPE
DEPTH = 2100  # deeper than Python's recursion limit and than PATH_MAX allows in one path
Secret = Callable[[str, str], str]


def _one_line(result: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    """Refused with exit ``code`` and one line of secretd's own, holding ``words``."""
    assert result.returncode == code, (result.stdout[-500:], result.stderr[-2000:])
    assert result.stderr.startswith("secretd: ") and result.stderr.count("\n") == 1, result.stderr
    assert "bug" not in result.stderr and "Traceback" not in result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


def _cache(clean_environ: dict[str, Path]) -> list[str]:
    cache = clean_environ["state"] / "images" / "layers"
    return sorted(p.name for p in cache.iterdir()) if cache.is_dir() else []


@pytest.mark.parametrize("member", [".wh...", "etc/.wh...", ".wh..", "etc/.wh."])
def test_a_whiteout_of_dot_dot_leaves_the_cache_alone(
    secretd: Runner, image: str, tmp_path: Path, clean_environ: dict[str, Path], member: str
) -> None:
    cached = _cache(clean_environ)
    assert len(cached) == 1  # busybox's layer
    layer = layer_tar(tmp_path / "evil.tar", [("etc", DIR, ""), (member, REG, "")])
    archive = busybox.docker_archive(tmp_path / "evil-image.tar", [layer], repo_tag="evil:1")
    result = secretd("image", "load", "-i", str(archive))
    assert _cache(clean_environ) == cached
    _one_line(result, 1, "image evil:1: layer sha256:", f"member {member!r} whites out",
              "which is not a name in its directory")
    assert run_ok(secretd, "run", "--rm", image, "cat", "/run/image-owned") == (
        "this file belongs to the image\n"
    )


def _deep_dirs(depth: int) -> str:
    """A shell command that makes a chain of ``depth`` directories at /deep: no single path
    may be that long, so chains of depth/5 are stacked with ``mv``."""
    step = "/".join(["d"] * (depth // 5))
    return f"mkdir /deep && for i in 1 2 3 4 5; do mkdir -p /n/{step} && mv /deep /n/{step}/ " \
           "&& mv /n /deep; done"


def _dead_container(secretd: Runner, image: str, secret: Secret) -> str:
    """A container whose secretd was killed (SIGKILL) after it made a very deep tree."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "secretd", "run", "--secret", secret("api_key", "v"), image,
         "sh", "-c", _deep_dirs(DEPTH) + "; echo ready; exec sleep 60"],
        stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    listing = run_ok(secretd, "container", "ls", "-q").split()
    assert len(listing) == 1
    return listing[0]


def test_a_container_thousands_of_levels_deep_is_pruned(
    secretd: Runner, image: str, secret: Secret, clean_environ: dict[str, Path]
) -> None:
    short = _dead_container(secretd, image, secret)
    out = run_ok(secretd, "prune")
    assert out.splitlines()[0] == "Deleted Containers:"
    assert out.splitlines()[1].startswith(short)
    assert mounts_under(clean_environ["runtime"]) == []
    assert run_ok(secretd, "container", "ls", "-a", "-q") == ""
    containers = clean_environ["state"] / "containers"
    assert [p for p in containers.iterdir() if not p.name.startswith(".")] == []


def test_a_container_thousands_of_levels_deep_does_not_stop_the_daemon(
    secretd: Runner, image: str, secret: Secret, clean_environ: dict[str, Path], tmp_path: Path
) -> None:
    short = _dead_container(secretd, image, secret)
    config = tmp_path / "daemon.toml"
    config.write_text('[daemon]\nsocket_mode = "0600"\nengines = []\n')
    sock = tmp_path / "sock" / "secretd.sock"
    sock.parent.mkdir(mode=0o700)
    log = tmp_path / "daemon.log"
    with log.open("wb") as out:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "secretd", "daemon", "--socket", str(sock),
             "--config-file", str(config)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
        )
    try:
        wait_for(lambda: sock.exists() or daemon.poll() is not None, "the daemon to listen",
                 timeout=60)
        assert daemon.poll() is None, log.read_text()
        assert f"took down container {short}" in log.read_text()
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(30)
    assert run_ok(secretd, "container", "ls", "-a", "-q") == ""
    assert mounts_under(clean_environ["runtime"]) == []


def test_a_detached_container_thousands_of_levels_deep_is_taken_down_when_it_ends(
    secretd: Runner, image: str, clean_environ: dict[str, Path]
) -> None:
    cid = run_ok(secretd, "run", "-d", image, "sh", "-c", _deep_dirs(DEPTH)).strip()
    wait_for(lambda: "Exited (0)" in run_ok(secretd, "container", "ls", "-a"),
             "the monitor to record the exit", timeout=60)
    directory = clean_environ["state"] / "containers" / cid
    kept = ["meta.json", "runc.log", "stderr.log", "stdout.log"]

    def left() -> list[str]:
        return sorted(p.name for p in directory.iterdir())

    # the monitor removes the upper layer first and the bundle's other files after it
    wait_for(lambda: left() == kept, "the upper layer and bundle files to go", timeout=30)
    assert run_ok(secretd, "rm", cid[:12]) == f"{cid[:12]}\n"


def test_two_removals_of_one_deep_tree_at_once_both_succeed() -> None:
    """``prune`` and a daemon's reap may take down one container together."""
    with tempfile.TemporaryDirectory(dir="/dev/shm") as scratch:
        tree = level = Path(scratch) / "tree"
        for _ in range(300):
            level.mkdir()
            for index in range(5):
                (level / f"f{index}").write_text("x")
            level = level / "d"
        with ThreadPoolExecutor(2) as pool:
            for future in [pool.submit(remove_path, tree) for _ in range(2)]:
                future.result()
        assert not tree.exists()


def test_a_working_directory_thousands_of_levels_deep_is_refused(
    secretd: Runner, image: str, tmp_path: Path, rootfs_layer: Path
) -> None:
    deep = "/a" * 2000
    archive = busybox.docker_archive(tmp_path / "deep.tar", [rootfs_layer], repo_tag="deep:1",
                                     config={"Cmd": ["true"], "WorkingDir": deep})
    _one_line(secretd("image", "load", "-i", str(archive)), 1,
              "image deep:1: its WorkingDir is more than 128 directories deep")
    _one_line(secretd("run", "--rm", f"docker-archive:{archive}"), 125, "WorkingDir")
    _one_line(secretd("run", "--rm", "-w", deep, image, "true"), 2,
              "-w is more than 128 directories deep")


def _with_layer(tmp_path: Path, rootfs_layer: Path, entries: list[tuple[str, bytes, str]]) -> str:
    layer = layer_tar(tmp_path / "top.tar", entries)
    return f"oci:{busybox.oci_layout(tmp_path / 'layout', [rootfs_layer, layer])}"


def test_a_fifo_as_etc_passwd_does_not_hang_a_run(
    secretd: Runner, tmp_path: Path, rootfs_layer: Path
) -> None:
    reference = _with_layer(tmp_path, rootfs_layer, [("etc/passwd", FIFO, "")])
    result = secretd("run", "--rm", reference, "true", timeout=30)
    _one_line(result, 125, "the image's /etc/passwd is not a regular file")


def test_a_huge_etc_group_is_refused(secretd: Runner, tmp_path: Path, rootfs_layer: Path) -> None:
    reference = _with_layer(tmp_path, rootfs_layer, [("etc/group", REG, "g:x:1:\n" * 700_000)])
    result = secretd("run", "--rm", reference, "true")
    _one_line(result, 125, "the image's /etc/group is larger than 4194304 bytes")


def test_accounts_files_with_ids_that_are_not_numbers(
    secretd: Runner, tmp_path: Path, rootfs_layer: Path
) -> None:
    passwd = "bad:x:abc:0::/:/bin/sh\nweird:x:\u00b2:0::/:/bin/sh\napp:x:1000:1000::/:/bin/sh\n"
    group = "grp:x:zz:app\nstaff:x:50:app\n"
    reference = _with_layer(tmp_path, rootfs_layer,
                            [("etc/passwd", REG, passwd), ("etc/group", REG, group)])
    assert run_ok(secretd, "run", "--rm", "-u", "app", reference, "id", "-G") == "1000 50\n"
    for user in ("bad", "\u00b2", "app:grp"):
        _one_line(secretd("run", "--rm", "-u", user, reference, "true"), 2, "unable to find")
    _one_line(secretd("run", "--rm", "-u", "99999999999", reference, "true"), 2,
              "uid 99999999999 is out of range")


@pytest.mark.parametrize("damage", ["", "{", "[]", '{"name": "x"}', '{"layers": 5}'])
def test_a_damaged_store_record_is_one_line(
    secretd: Runner, image: str, busybox_tar: Path, clean_environ: dict[str, Path], damage: str
) -> None:
    run_ok(secretd, "image", "load", "-i", str(busybox_tar), "--name", "ok")
    (clean_environ["state"] / "images" / "tags" / "busybox%3Alatest.json").write_text(damage)
    assert run_ok(secretd, "image", "ls", "-q") == "ok:latest\n"
    _one_line(secretd("run", "--rm", image, "true"), 125,
              "the store's record of image 'busybox:latest' is damaged: load it again")
    run_ok(secretd, "image", "load", "-i", str(busybox_tar))
    assert run_ok(secretd, "run", "--rm", image, "echo", "ok") == "ok\n"


def _bomb(tmp_path: Path, name: str, size: int) -> Path:
    """A layer holding ``size`` zero bytes (a few kB once gzip-compressed)."""
    path = tmp_path / name
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo(name)
        info.size = size
        with open("/dev/zero", "rb") as zeros:
            tar.addfile(info, zeros)
    return path


@pytest.mark.parametrize("how", ["environment", "secretd.toml"])
def test_a_layer_that_unpacks_beyond_the_limit_is_refused(
    secretd: Runner, tmp_path: Path, clean_environ: dict[str, Path], how: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if how == "environment":
        monkeypatch.setenv("SECRETD_OCI_MAX_LAYER_SIZE", "1MiB")
    else:
        (tmp_path / "secretd.toml").write_text('[providers.oci]\nmax_layer_size = "1M"\n')
    layout = busybox.oci_archive(tmp_path / "bomb.tar", [_bomb(tmp_path, "z.tar", 8 << 20)],
                                 compress=True)
    assert layout.stat().st_size < 64 << 10
    result = secretd("image", "load", "-i", str(layout))
    _one_line(result, 1, "image bomb:latest: layer sha256:", "unpacks to more than 1048576 bytes",
              "max_layer_size")
    assert _cache(clean_environ) == []


def test_a_sparse_member_counts_at_its_full_size(
    secretd: Runner, tmp_path: Path, clean_environ: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SECRETD_OCI_MAX_LAYER_SIZE", "1MiB")
    (tmp_path / "files").mkdir()
    with open(tmp_path / "files" / "hole", "wb") as fh:
        fh.truncate(64 << 20)
    layer = tmp_path / "sparse.tar"
    subprocess.run(["tar", "--sparse", "--format=pax", "-cf", str(layer), "-C",
                    str(tmp_path / "files"), "hole"], check=True)
    assert layer.stat().st_size < 64 << 10  # a few blocks that claim 64 MiB
    archive = busybox.docker_archive(tmp_path / "sparse-image.tar", [layer], repo_tag="sp:1")
    _one_line(secretd("image", "load", "-i", str(archive)), 1,
              "image sp:1: layer sha256:", "unpacks to more than 1048576 bytes")
    assert _cache(clean_environ) == []


def test_the_layers_of_one_image_share_one_limit(
    secretd: Runner, tmp_path: Path, clean_environ: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SECRETD_OCI_MAX_IMAGE_SIZE", "3MiB")
    layers = [_bomb(tmp_path, f"{n}.tar", 2 << 20) for n in "ab"]
    archive = busybox.docker_archive(tmp_path / "two.tar", layers, repo_tag="two:1")
    result = secretd("image", "load", "-i", str(archive))
    _one_line(result, 1, "image two:1: its layers unpack to more than 3145728 bytes")
    assert len(_cache(clean_environ)) == 1  # the first layer fit, and is reused next time

    monkeypatch.setenv("SECRETD_OCI_MAX_IMAGE_SIZE", "lots")
    _one_line(secretd("image", "load", "-i", str(archive)), 2,
              "SECRETD_OCI_MAX_IMAGE_SIZE = 'lots' is not a size")


def _index(layout: Path) -> dict[str, object]:
    return dict(json.loads((layout / "index.json").read_text()))


def test_an_index_listing_one_manifest_30000_times_is_read_once(
    secretd: Runner, tmp_path: Path, rootfs_layer: Path
) -> None:
    layout = busybox.oci_layout(tmp_path / "many", [rootfs_layer])
    index = _index(layout)
    index["manifests"] = index["manifests"] * 30_000  # type: ignore[operator]
    (layout / "index.json").write_text(json.dumps(index))
    assert run_ok(secretd, "image", "load", "-i", str(layout), timeout=60) == (
        "Loaded image: many:latest\n"
    )
    assert run_ok(secretd, "run", "--rm", f"oci:{layout}", "echo", "ok") == "ok\n"


def test_a_docker_manifest_listing_one_image_30000_times_is_read_once(
    secretd: Runner, tmp_path: Path, rootfs_layer: Path
) -> None:
    files = busybox.docker_files([rootfs_layer])
    files["manifest.json"] = json.dumps(json.loads(files["manifest.json"]) * 30_000).encode()
    archive = busybox.write_tar(tmp_path / "many.tar", files)
    assert run_ok(secretd, "image", "load", "-i", str(archive)) == "Loaded image: busybox:latest\n"


def test_indexes_nested_too_deep_are_refused(
    secretd: Runner, tmp_path: Path, rootfs_layer: Path
) -> None:
    import hashlib

    layout = busybox.oci_layout(tmp_path / "nested", [rootfs_layer])
    index = _index(layout)
    for _ in range(6):
        blob = json.dumps(index).encode()
        digest = hashlib.sha256(blob).hexdigest()
        (layout / "blobs" / "sha256" / digest).write_bytes(blob)
        index = {"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": f"sha256:{digest}", "size": len(blob)}]}
    (layout / "index.json").write_text(json.dumps(index))
    _one_line(secretd("image", "load", "-i", str(layout)), 1, "its indexes nest more than 4 deep")


MALFORMED = {
    "index is a list": ("index.json", b"[]", "index.json is not a JSON object"),
    "manifests is a number": ("index.json", b'{"manifests": 5}', "'manifests' is not a list"),
    "a manifest is a string": ("index.json", b'{"manifests": ["x"]}', "is not a list of objects"),
    "not JSON": ("index.json", b"\xff\xfe{", "'index.json' in"),
    "nested 100,000 deep": ("index.json", b"[" * 100_000, "is not valid JSON"),
    "a digest is a number": ("index.json", b'{"manifests": [{"digest": 7}]}',
                             "unsupported digest '7'"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_image_json_is_one_line(
    secretd: Runner, tmp_path: Path, rootfs_layer: Path, case: str
) -> None:
    name, data, words = MALFORMED[case]
    layout = busybox.oci_layout(tmp_path / "bad", [rootfs_layer])
    (layout / name).write_bytes(data)
    _one_line(secretd("image", "load", "-i", str(layout)), 1, words)
    _one_line(secretd("run", "--rm", f"oci:{layout}", "true"), 125, words)


@pytest.mark.parametrize("config", [
    {"Env": "PATH=/bin", "Cmd": ["true"]},
    {"Cmd": "true"},
    {"Cmd": ["true", 7]},
    {"User": 0, "Cmd": ["true"]},
])
def test_an_image_config_of_the_wrong_types_is_one_line(
    secretd: Runner, tmp_path: Path, rootfs_layer: Path, config: dict[str, object]
) -> None:
    archive = busybox.docker_archive(tmp_path / "typed.tar", [rootfs_layer], repo_tag="typed:1",
                                     config=config)
    _one_line(secretd("image", "load", "-i", str(archive)), 1, "image typed:1: ",
              "in its config is not a")


def _docker_archive_with(tmp_path: Path, layer: Path, compress: Callable[[bytes], bytes]) -> Path:
    """A ``docker save`` archive whose layer.tar holds ``compress(layer)`` (the config's
    diff_id still names the uncompressed tar, as Docker writes it)."""
    files = busybox.docker_files([layer])
    name = next(n for n in files if n.endswith("layer.tar"))
    files[name] = compress(files[name])
    return busybox.write_tar(tmp_path / "archive.tar", files)


def test_a_gzip_layer_in_a_docker_archive_is_accepted(
    secretd: Runner, tmp_path: Path, rootfs_layer: Path
) -> None:
    archive = _docker_archive_with(tmp_path, rootfs_layer, lambda d: gzip.compress(d, mtime=0))
    assert run_ok(secretd, "run", "--rm", f"docker-archive:{archive}", "cat",
                  "/run/image-owned") == "this file belongs to the image\n"
    assert run_ok(secretd, "image", "load", "-i", str(archive)) == "Loaded image: busybox:latest\n"


def test_a_damaged_gzip_layer_in_a_docker_archive_is_refused(
    secretd: Runner, tmp_path: Path, rootfs_layer: Path, clean_environ: dict[str, Path]
) -> None:
    def altered(data: bytes) -> bytes:
        return gzip.compress(data.replace(b"belongs", b"BELONGS"), mtime=0)

    archive = _docker_archive_with(tmp_path, rootfs_layer, altered)
    _one_line(secretd("image", "load", "-i", str(archive)), 1,
              "does not match the image config's diff_id")
    assert _cache(clean_environ) == []


def test_a_zstd_layer_is_named_as_such(secretd: Runner, tmp_path: Path, rootfs_layer: Path) -> None:
    archive = _docker_archive_with(tmp_path, rootfs_layer, lambda d: b"\x28\xb5\x2f\xfd" + d)
    _one_line(secretd("image", "load", "-i", str(archive)), 1, "is compressed with zstd",
              "recompress it with gzip")
