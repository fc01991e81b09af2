"""A forwarded run is parsed by the daemon with the caller's environment given to the
parse, never made the daemon's own: what the daemon starts or looks up for itself (a
program on its ``PATH``, an image engine) is the daemon's, whoever forwarded a run."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from secretd import client
from secretd.config import load_config
from tests.daemon.conftest import NOBODY, Daemon, World
from tests.daemon.conftest import daemon as daemon  # noqa: F401 - the fixtures
from tests.daemon.conftest import world as world  # noqa: F401
from tests.support.forwarding import StandIn, forward
from tests.support.launcher import install

from .test_env_forwarded import as_nobody

FAKE_PODMAN = "#!/bin/sh\ntouch {ran}/as-$(id -u)\nexit 1\n"


@pytest.fixture
def no_docker(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No Docker answers the daemon started next: an image lookup would ask podman."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    yield


def test_a_callers_path_runs_no_program_as_the_daemon(
    no_docker: None,
    world: World,  # noqa: F811
    daemon: Daemon,  # noqa: F811
) -> None:
    """``nobody`` puts a ``podman`` of its own first on its ``PATH`` and names an image
    (``--`` after it): the daemon hands the run back without looking for the image, so
    that ``podman`` runs as ``nobody`` (by nobody's own CLI), never as root."""
    bin_dir, ran = world.root / "nobody-bin", world.root / "ran"
    bin_dir.mkdir(mode=0o755)
    ran.mkdir()
    ran.chmod(0o777)
    podman = bin_dir / "podman"
    podman.write_text(FAKE_PODMAN.format(ran=ran))
    podman.chmod(0o755)
    launcher = world.root / "secretd"
    install(launcher)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "DOCKER_HOST": "unix:///nonexistent/d.sock"}
    args = ["run", "no-such-image-4f2", "--", "true"]
    through_thin = as_nobody(world, [str(launcher), *args], **env)
    full = as_nobody(world, [sys.executable, "-m", "secretd", *args], **env)
    assert (through_thin.returncode, through_thin.stdout, through_thin.stderr) == (
        full.returncode, full.stdout, full.stderr,
    )  # fmt: skip
    assert through_thin.returncode == 2, through_thin.stderr
    assert [path.name for path in ran.iterdir()] == [f"as-{NOBODY}"], daemon.logs()
    assert "op=argv" in daemon.logs()


def test_the_daemons_environ_and_stderr_stay_its_own(tmp_path: Path) -> None:
    """Unit: the handler gives the caller's environment to the parse and writes the
    warnings to the caller's stderr, and replaces nothing of the daemon's process: its
    ``os.environ`` (what every thread and program it starts reads), ``sys.stderr``,
    ``client.run``."""
    own = (os.environ, sys.stderr, client.run)
    settings = {"SECRETD_STATE_DIR": str(tmp_path / "s"), "SECRETD_RUNTIME_DIR": str(tmp_path)}
    daemon = StandIn(load_config({}, None, settings, tmp_path))
    caller = {"CALLER_ONLY": "caller-3e1", "API_TOKEN": "tok-value-9f8e7d6c5b4a", "PATH": "/x"}
    argv = ["--no-redact", "-e", "API_TOKEN", "--secret", "t=env:CALLER_ONLY", "--", "true"]
    chan = forward(daemon, argv, caller)
    assert (os.environ, sys.stderr, client.run) == own
    assert type(os.environ) is os._Environ and "CALLER_ONLY" not in os.environ
    assert chan.sent == []  # not handed back
    [run] = daemon.started
    assert run.own == own
    assert (run.texts, run.cwd, run.environ) == (tuple(argv[4:5]), "/tmp", caller)
    assert run.spec.command == ("true",) and run.spec.redact is False
    # inherited, less what --secret moved into a file, and -e API_TOKEN: the caller's
    assert dict(run.spec.env) == {"API_TOKEN": caller["API_TOKEN"], "PATH": "/x"}
    assert run.stderr.startswith("secretd: warning: -e API_TOKEN looks like a secret")


def test_a_bug_reading_a_forwarded_run_is_handed_back_and_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Unit: a fault of the daemon's own while it reads a command line (not a refusal the
    full CLI would print) still hands the run back, and the daemon's log names its type and
    place, never its text: a broker fails loudly, and its log holds no value."""

    def broken(*args: object, **kwargs: object) -> None:
        raise TypeError("value-in-the-text-4b1")

    monkeypatch.setattr("secretd.cli.forwarded.prepare", broken)
    settings = {"SECRETD_STATE_DIR": str(tmp_path / "s"), "SECRETD_RUNTIME_DIR": str(tmp_path)}
    daemon = StandIn(load_config({}, None, settings, tmp_path))
    with caplog.at_level("WARNING", logger="secretd"):
        chan = forward(daemon, ["--", "true"], {"PATH": "/bin"})
    assert chan.sent == [{"event": "fallback"}] and daemon.started == []
    (record,) = [r for r in caplog.records if r.name == "secretd.cli.forwarded"]
    line = record.getMessage()
    assert record.levelname == "WARNING"
    assert line.startswith("reading a forwarded run failed: TypeError in ")
    assert "secretd/cli/forwarded.py:" in line and "value-in-the-text" not in line
