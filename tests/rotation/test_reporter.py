"""The rotation tests' reporter records only values the file had, even when signals hit
its whole process group, as the sandbox's ``tini -g`` sends them (a SIGHUP there once
killed the reporter's ``cat``, and the empty read was logged as a value, failing CI)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from tests.rotation.conftest import Follower, reporter


def test_signals_to_the_process_group_add_no_value_the_file_never_had(tmp_path: Path) -> None:
    target = tmp_path / "api_key"
    target.write_text("steady")
    follower = Follower(tmp_path / "seen.log")
    shell = subprocess.Popen(
        ["sh", "-c", reporter(follower.log, str(target), period=0.001)],
        start_new_session=True,
        stderr=subprocess.DEVNULL,
    )
    try:
        follower.wait_value("steady")
        for _ in range(200):
            os.killpg(shell.pid, signal.SIGHUP)
            time.sleep(0.005)
        time.sleep(0.5)  # the last looks are logged
    finally:
        os.killpg(shell.pid, signal.SIGTERM)
        shell.wait(timeout=10)
    assert follower.lines().count("HUP") > 100  # signals of one kind may merge
    assert follower.values() == ["steady"]
