"""A new version in a real provider reaches a running command within one refresh interval:
a KV v2 version in OpenBao, an AWSCURRENT version in moto. A version with the same content
is never written (same inode) and causes no action."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.aws.conftest import aws_env, moto, moto_server  # noqa: F401 - fixtures
from tests.aws.servers import REGION, Moto
from tests.rotation.conftest import DebugLog, Follower, reporter, settle
from tests.support.waiting import wait_for
from tests.vault.conftest import openbao, unique  # noqa: F401 - fixtures
from tests.vault.servers import ROOT_TOKEN, BaoServer

pytestmark = pytest.mark.root

Start = Callable[..., subprocess.Popen[str]]
REFRESH = 2.0
SLACK = 6.0  # the reporter's own polling, process start-up on a busy machine


def reaches(follower: Follower, value: str, write: Callable[[], None]) -> float:
    """Seconds from ``write()`` to the command seeing ``value``."""
    began = time.monotonic()
    write()
    follower.wait_value(value, timeout=REFRESH + SLACK + 10)
    return time.monotonic() - began


@pytest.mark.vault
def test_a_new_kv2_version_reaches_the_command_and_an_equal_one_is_not_written(
    openbao: BaoServer,  # noqa: F811
    unique: str,  # noqa: F811
    background: Start,
    tmp_path: Path,
    debug_log: DebugLog,
) -> None:
    kv = openbao.client().secrets.kv.v2
    kv.create_or_update_secret(unique, secret={"password": "kv-one"})
    Path("secretd.toml").write_text(
        f'[providers.vault]\naddress = "{openbao.address}"\ntoken = "{ROOT_TOKEN}"\n'
    )
    follower = Follower(tmp_path / "seen.log")
    ref = f"source=vault:secret/{unique}#password,target=db,refresh={REFRESH:g}s"
    background(
        *debug_log.args, "run", "--on-change", "signal:HUP", "--secret", ref, "--",
        "sh", "-c", reporter(follower.log, "/run/secrets/db"), stderr=debug_log.file,
    )  # fmt: skip
    follower.wait_value("kv-one")
    took = reaches(
        follower,
        "kv-two",
        lambda: kv.create_or_update_secret(unique, secret={"password": "kv-two"}),
    )
    assert took < REFRESH + SLACK
    wait_for(lambda: follower.lines().count("HUP") == 1, f"one HUP in {follower.lines()}")
    kv.create_or_update_secret(unique, secret={"password": "kv-two"})  # version 3, same value
    debug_log.wait("same content: nothing to do")
    settle(0.5)  # what a write would have been followed by
    assert follower.values() == ["kv-one", "kv-two"]  # same inode: not rewritten
    assert follower.lines().count("HUP") == 1


@pytest.mark.aws
def test_a_new_aws_version_reaches_the_command(
    moto: Moto,  # noqa: F811
    background: Start,
    tmp_path: Path,
) -> None:
    manager = moto.client("secretsmanager")
    manager.create_secret(Name="prod/api", SecretString="aws-one")
    Path("secretd.toml").write_text(
        f'[providers.aws]\nendpoint_url = "{moto.url}"\nregion = "{REGION}"\n'
    )
    follower = Follower(tmp_path / "seen.log")
    ref = f"source=aws:prod/api,target=api,refresh={REFRESH:g}s"
    background("run", "--secret", ref, "--", "sh", "-c", reporter(follower.log, "/run/secrets/api"))
    follower.wait_value("aws-one")
    took = reaches(
        follower,
        "aws-two",
        lambda: manager.put_secret_value(SecretId="prod/api", SecretString="aws-two"),
    )
    assert took < REFRESH + SLACK


@pytest.mark.aws
def test_a_new_ssm_parameter_version_reaches_the_command(
    moto: Moto,  # noqa: F811
    background: Start,
    tmp_path: Path,
) -> None:
    ssm = moto.client("ssm")
    ssm.put_parameter(Name="/app/token", Value="ssm-one", Type="SecureString")
    Path("secretd.toml").write_text(
        f'[providers.aws]\nendpoint_url = "{moto.url}"\nregion = "{REGION}"\n'
    )
    follower = Follower(tmp_path / "seen.log")
    ref = f"source=ssm:/app/token,target=token,refresh={REFRESH:g}s"
    background(
        "run", "--secret", ref, "--", "sh", "-c", reporter(follower.log, "/run/secrets/token")
    )
    follower.wait_value("ssm-one")
    took = reaches(
        follower,
        "ssm-two",
        lambda: ssm.put_parameter(
            Name="/app/token", Value="ssm-two", Type="SecureString", Overwrite=True
        ),
    )
    assert took < REFRESH + SLACK
