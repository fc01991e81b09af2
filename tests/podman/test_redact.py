"""``secretd run --runtime podman --redact``: podman gets the pipes secretd filters, and
the container's output is masked on its way out, exit status kept."""

from __future__ import annotations

import pytest

from tests.conftest import Runner
from tests.podman.conftest import IMAGE
from tests.support.engines import Bind

pytestmark = [pytest.mark.podman, pytest.mark.root]


def test_a_containers_output_is_masked(secretd: Runner, bound: Bind) -> None:
    values = bound("api_key")
    done = secretd(
        "run", "--runtime", "podman", "--rm", "--redact", "--secret", "api_key", IMAGE,
        "sh", "-c", "cat /run/secrets/api_key; echo; cat /run/secrets/api_key >&2; exit 6",
    )  # fmt: skip
    assert done.returncode == 6, done.stderr
    assert (done.stdout, done.stderr.splitlines()[-1]) == ("[MASKED]\n", "[MASKED]")
    assert values["api_key"] not in done.stdout + done.stderr
