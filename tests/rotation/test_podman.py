"""A detached Podman container is listed by ``secretd ps`` and, once ``podman rm -f``
removed it, ``secretd prune`` removes its secrets mount."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.podman.conftest import IMAGE, Podman, podman, podman_environ  # noqa: F401 - fixtures
from tests.rotation.conftest import runtime_mounts

pytestmark = [pytest.mark.root, pytest.mark.podman]

Secretd = Callable[..., subprocess.CompletedProcess[str]]


def test_a_detached_podman_container_is_listed_and_pruned_once_removed(
    secretd: Secretd,
    store_env: dict[str, str],
    podman: Podman,  # noqa: F811
    clean_environ: dict[str, Path],
) -> None:
    assert secretd("secret", "create", "api_key", "-", input="pod").returncode == 0
    started = secretd(
        "run", "-d", "--runtime", "podman", "--secret", "api_key", IMAGE, "sleep", "300"
    )
    assert started.returncode == 0, started.stderr
    cid = started.stdout.strip()
    listed = secretd("ps")
    assert cid[:12] in listed.stdout and "api_key" in listed.stdout, listed
    assert len(runtime_mounts(clean_environ)) == 1
    podman("rm", "--force", "--time=0", cid)
    pruned = secretd("prune")
    assert pruned.returncode == 0, pruned.stderr
    assert runtime_mounts(clean_environ) == []
    assert cid[:12] not in secretd("ps").stdout
