"""``secretd run --runtime docker --redact``: a container's output is masked on its way to
secretd's stdout and stderr, with and without ``-t``, and its exit status kept."""

from __future__ import annotations

import pytest

from tests.conftest import Runner
from tests.docker.conftest import IMAGE
from tests.support.engines import Bind

pytestmark = [pytest.mark.docker, pytest.mark.root]


@pytest.mark.parametrize("tty", [[], ["-t"]])
def test_a_containers_output_is_masked(secretd: Runner, bound: Bind, tty: list[str]) -> None:
    values = bound("api_key")
    assert len(values["api_key"]) >= 8
    done = secretd(
        "run", "--runtime", "docker", "--rm", "--redact", *tty, "--secret", "api_key", IMAGE,
        "sh", "-c", "cat /run/secrets/api_key; echo; cat /run/secrets/api_key >&2; exit 5",
    )  # fmt: skip
    assert done.returncode == 5, done.stderr
    both = done.stdout + done.stderr
    assert values["api_key"] not in both and both.count("[MASKED]") == 2
