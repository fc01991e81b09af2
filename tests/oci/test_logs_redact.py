"""``secretd logs`` masks a detached container's secrets: while it runs, the values in its
secrets mount; once it stopped, its secrets resolved again by name."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest

from tests.conftest import Runner
from tests.oci.conftest import run_ok
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.runc, pytest.mark.root]

FILE_VALUE = "file-value-0a1b2c3d"
STORE_VALUE = "store-value-9z8y7x6w5"  # 21 bytes: base64 ends on a boundary
PRINT = (
    "cat /run/secrets/f; echo; cat /run/secrets/tok; echo; base64 /run/secrets/tok; "
    "cat /run/secrets/tok >&2; echo done >&2; exec sleep 60"
)


def test_logs_mask_the_containers_secrets_running_and_stopped(
    secretd: Runner,
    image: str,
    secret: Callable[[str, str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SECRETD_REDACT")  # the default (tests/conftest.py turns it off)
    assert secretd("secret", "create", "tok", "-", input=STORE_VALUE).returncode == 0
    run_ok(secretd, "run", "-d", "--name", "job", "--secret", secret("f", FILE_VALUE),
           "--secret", "tok", image, "sh", "-c", PRINT)  # fmt: skip
    encoded = base64.b64encode(STORE_VALUE.encode()).decode()
    plain = f"{FILE_VALUE}\n{STORE_VALUE}\n{encoded}\n"
    wait_for(
        lambda: secretd("logs", "--no-redact", "job").stdout == plain, "the output", timeout=20
    )
    running = secretd("logs", "job")  # stdout is a pipe: redacted by default
    assert (running.returncode, running.stdout) == (0, "[MASKED]\n[MASKED]\n[MASKED]\n")
    assert running.stderr == "[MASKED]done\n"

    assert run_ok(secretd, "stop", "-t", "1", "job") == "job\n"
    stopped = secretd("logs", "job")
    # tok is in the store and is masked again; f (a file named on the command line) is
    # not recorded anywhere, so it cannot be, and the warning says so
    assert stopped.stdout == f"{FILE_VALUE}\n[MASKED]\n[MASKED]\n"
    assert "cannot mask secret 'f' in the logs" in stopped.stderr
    assert STORE_VALUE not in stopped.stderr
    run_ok(secretd, "rm", "job")


def test_a_foreground_image_run_is_masked_with_its_status(
    secretd: Runner, image: str, secret: Callable[[str, str], str]
) -> None:
    result = secretd(
        "run", "--redact", "--secret", secret("f", FILE_VALUE), image,
        "sh", "-c", "cat /run/secrets/f; echo; cat /run/secrets/f >&2; exit 4",
    )  # fmt: skip
    assert (result.returncode, result.stdout, result.stderr) == (4, "[MASKED]\n", "[MASKED]")
