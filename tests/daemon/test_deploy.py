"""deploy/: the units verify, install.sh stages what it should, the example config loads,
and the daemon works when systemd hands it the socket (LISTEN_FDS)."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from secretd.config import load_config
from secretd.policy import Policy

from .conftest import CANARY, World, client, ping, wait_for

DEPLOY = Path(__file__).parents[2] / "deploy"
FD_PROBE = "for fd in /proc/$$/fd/*; do readlink $fd; done; cat /run/secrets/api_key"


def test_install_stages_units_config_and_directories(tmp_path: Path) -> None:
    env = dict(os.environ, ROOT=str(tmp_path), SECRETD_BIN="/opt/secretd/bin/secretd")
    result = subprocess.run([DEPLOY / "install.sh"], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    modes = {
        "var/lib/secretd": 0o700,
        "run/secretd": 0o755,
        "etc/secretd/secretd.toml": 0o600,
        "etc/systemd/system/secretd.service": 0o644,
        "etc/systemd/system/secretd.socket": 0o644,
    }
    for path, mode in modes.items():
        assert stat.S_IMODE((tmp_path / path).stat().st_mode) == mode, path
    service = (tmp_path / "etc/systemd/system/secretd.service").read_text()
    assert (
        "ExecStart=/opt/secretd/bin/secretd daemon --config-file /etc/secretd/secretd.toml"
        in service
    )
    (tmp_path / "etc/secretd/secretd.toml").write_text("# mine\n")
    subprocess.run([DEPLOY / "install.sh"], env=env, check=True, capture_output=True)
    assert (tmp_path / "etc/secretd/secretd.toml").read_text() == "# mine\n"  # kept


def test_units_verify(tmp_path: Path) -> None:
    for name in ("secretd.service", "secretd.socket"):
        text = (DEPLOY / name).read_text().replace("/usr/local/bin/secretd", sys.executable)
        (tmp_path / name).write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", tmp_path / "secretd.socket", tmp_path / "secretd.service"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    socket_unit = (DEPLOY / "secretd.socket").read_text()
    assert "ListenStream=/run/secretd/secretd.sock" in socket_unit
    assert "SocketMode=0660" in socket_unit and "SocketGroup=secretd" in socket_unit


def test_example_config_loads_with_its_policy() -> None:
    config = load_config(config_file=DEPLOY / "secretd.toml")
    policy = Policy.from_config(config)
    assert [rule.name for rule in policy.rules] == ["web", "ci"]
    assert policy.rules[0].secrets == ("api_key", "web-*")
    assert policy.source == str(DEPLOY / "secretd.toml")
    assert config.daemon["socket_group"] == "secretd"


@pytest.mark.root
def test_socket_activation(world: World) -> None:
    log = world.log.open("wb")
    activator = subprocess.Popen(
        [
            "systemd-socket-activate",
            "-l",
            str(world.socket),
            sys.executable,
            "-m",
            "secretd",
            "daemon",
            "--config-file",
            str(world.config),
        ],
        cwd=world.root,
        env=world.env(),
        stdout=log,
        stderr=log,
    )
    try:
        wait_for(world.socket.exists, "systemd-socket-activate to listen")
        result = client(world, "run", "--secret", "api_key", "--", "sh", "-c", FD_PROBE)
        assert result.returncode == 0, result.stderr + world.log.read_text()
        links = result.stdout.splitlines()[:-1]
        assert not [link for link in links if link.startswith("socket:")], links
        assert result.stdout.endswith(CANARY)
        assert f"listening on {world.socket}" in world.log.read_text()
        assert ping(world.socket) is not None
    finally:
        activator.send_signal(signal.SIGTERM)
        assert activator.wait(15) == 0
        log.close()
    assert world.socket.exists()  # systemd's socket: the daemon must not remove it


@pytest.mark.root
def test_commands_inherit_no_daemon_descriptors(world: World, daemon: object) -> None:
    result = client(world, "run", "--secret", "api_key", "--", "sh", "-c", FD_PROBE)
    assert result.returncode == 0, result.stderr
    links = result.stdout.splitlines()[:-1]
    assert len(links) == 3 and not [link for link in links if link.startswith("socket:")]
