"""A tiny test image from Debian's busybox-static: no registry is reachable here.

``rootfs_tar`` writes a root filesystem as one tar (for ``docker import`` and as an image
layer); other helpers wrap it into an OCI layout or a ``docker save`` archive.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
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
