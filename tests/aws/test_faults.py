"""moto stopped, stalled and answering 5xx when ``secretd run`` resolves ``aws:`` and
``ssm:`` references: one line and exit 125 (the command never starts), retries as boto3's
mode says, and no mount or process left behind."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.aws.servers import REGION, Moto
from tests.conftest import Runner
from tests.support.hostile_http import HostileServer, Reply, answer, forward, hostile_server
from tests.support.leftovers import mounted_anywhere, processes_with

pytestmark = [pytest.mark.aws, pytest.mark.root]

GET = "POST secretsmanager.GetSecretValue"


@dataclass
class Fault:
    """What the proxy in front of moto does now: pass, answer 503 (``count`` times,
    or for ever), or stall."""

    mode: str = "pass"
    count: int = -1

    def before(self) -> Reply | None:
        if self.mode == "pass" or self.count == 0:
            return None
        self.count -= 1
        if self.mode == "stall":
            time.sleep(3)
            return None
        return answer({"__type": "ServiceUnavailable", "message": "down"}, 503)


def stock(moto: Moto) -> None:
    moto.client("secretsmanager").create_secret(
        Name="prod/db", SecretString=json.dumps({"password": "pw-fault"})
    )


@pytest.fixture
def proxied(moto: Moto) -> Iterator[tuple[HostileServer, Fault]]:
    stock(moto)
    fault = Fault()
    with hostile_server() as proxy:
        proxy.fallback = forward(moto.url, fault.before)
        yield proxy, fault


def run(secretd: Runner, endpoint: str, **settings: float) -> tuple[int, str, str, list[int]]:
    """``secretd run`` of a command that prints the secret; returns its status, output
    and the leftovers (mounts of its secrets directory, processes of its command)."""
    extra = "".join(f"{key} = {value}\n" for key, value in settings.items())
    Path("secretd.toml").write_text(
        f'[providers.aws]\nendpoint_url = "{endpoint}"\nregion = "{REGION}"\n{extra}'
    )
    secrets_dir = f"/run/secretd-fault-{secrets.token_hex(4)}"
    marker = f"marker-{secrets.token_hex(6)}"
    result = secretd(
        "run", "--secrets-dir", secrets_dir, "--secret", "db=aws:prod/db#password",
        "--", "sh", "-c", f'cat {secrets_dir}/db; : "{marker}"',
    )  # fmt: skip
    left = mounted_anywhere(secrets_dir) + processes_with(marker)
    return result.returncode, result.stdout, result.stderr, left


def test_stopped(secretd: Runner, own_moto: Moto) -> None:
    stock(own_moto)
    assert run(secretd, own_moto.url)[:3] == (0, "pw-fault", "")
    own_moto.stop()
    status, stdout, stderr, left = run(secretd, own_moto.url)
    assert (status, stdout, left) == (125, "", [])
    assert stderr == (
        f"secretd: AWS Secrets Manager at {own_moto.url} unreachable (secret 'prod/db', "
        f"{REGION}): check endpoint_url in [providers.aws], the network and the proxy settings\n"
    )


def test_stalled_ends_at_the_deadline(
    secretd: Runner, proxied: tuple[HostileServer, Fault]
) -> None:
    proxy, fault = proxied
    fault.mode = "stall"
    started = time.monotonic()
    status, stdout, stderr, left = run(secretd, proxy.url, timeout=1)
    assert (status, stdout, left) == (125, "", [])
    assert stderr == (
        f"secretd: AWS Secrets Manager at {proxy.url} did not answer within 1s "
        f"(secret 'prod/db', {REGION}): try again, or raise timeout in [providers.aws]\n"
    )
    assert time.monotonic() - started < 10


def test_503_is_retried_then_reported(
    secretd: Runner, proxied: tuple[HostileServer, Fault]
) -> None:
    proxy, fault = proxied
    fault.mode = "503"
    status, stdout, stderr, left = run(secretd, proxy.url)
    assert (status, stdout, left) == (125, "", [])
    assert stderr == (
        f"secretd: secret 'db': AWS Secrets Manager kept failing (ServiceUnavailable, 3 "
        f"attempts) for secret 'prod/db' in {REGION}: try again later, or raise max_attempts "
        "in [providers.aws]\n"
    )
    assert proxy.hits(GET) == 3


def test_one_503_is_retried_away(secretd: Runner, proxied: tuple[HostileServer, Fault]) -> None:
    proxy, fault = proxied
    fault.mode, fault.count = "503", 1
    assert run(secretd, proxy.url) == (0, "pw-fault", "", [])
    assert proxy.hits(GET) == 2
