"""Helpers shared by the docker and podman tests: bound secrets, leftover mounts."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from secretd.mount.tmpfs import remove_host_mount

Bind = Callable[..., dict[str, str]]


@pytest.fixture
def bound(tmp_path: Path) -> Bind:
    """Bind secret names to fresh random values in ./secretd.toml (``file:`` sources)."""

    def bind(*names: str) -> dict[str, str]:
        values = {name: f"sk-{name}-{secrets.token_hex(12)}" for name in names}
        lines = []
        for name, value in values.items():
            path = tmp_path / f"{name}.value"
            path.write_text(value)
            lines += [f"[secrets.{name}]", f'source = "file:{path}"']
        (tmp_path / "secretd.toml").write_text("\n".join(lines) + "\n")
        return values

    return bind


def mounts_left(runtime_dir: Path) -> list[str]:
    """secretd tmpfs mounts under ``runtime_dir`` still on the host, and their dirs."""
    with open("/proc/self/mounts") as fh:
        mounted = [line.split()[1] for line in fh if str(runtime_dir) in line]
    base = runtime_dir / "mounts"
    return mounted + ([str(p) for p in base.iterdir()] if base.is_dir() else [])


@pytest.fixture(autouse=True)
def unmount_leftovers(clean_environ: dict[str, Path]) -> Iterator[None]:
    """After a test, even a failed one, unmount what it left so tmp dirs can be removed
    (tests that care assert ``mounts_left(...) == []`` themselves)."""
    yield
    base = clean_environ["runtime"] / "mounts"
    for path in base.iterdir() if base.is_dir() else []:
        remove_host_mount(path)
