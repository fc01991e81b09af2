"""What a signal sent to ``secretd compose`` does while compose runs: SIGTERM, SIGHUP and
SIGQUIT reach compose, and SIGINT (Ctrl-C, which the terminal sends compose itself) does
not end secretd before compose. A shell stands in for compose; the signals are real."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.support.waiting import wait_for

# Reports the signals it gets, and ends with status 3 at SIGTERM.
COMPOSE = (
    "trap 'echo got HUP' HUP; trap 'echo got TERM; exit 3' TERM;"
    " touch \"$READY\"; while :; do sleep 0.05; done"
)
RUN = """\
import sys
from secretd.compose.project import Project, run_compose
compose = ("sh", "-c", sys.argv[1], "compose")
sys.exit(run_compose(Project(compose, directory=sys.argv[2]), {"name": "p"}, ["up"]))
"""


def test_term_and_hup_reach_compose_and_int_does_not_end_secretd(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    proc = subprocess.Popen(
        [sys.executable, "-c", RUN, COMPOSE, str(tmp_path)],
        env={**os.environ, "READY": str(ready)}, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for(ready.exists, "the stand-in compose to start")
        proc.send_signal(signal.SIGINT)
        proc.send_signal(signal.SIGHUP)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 3  # compose's own status, secretd did not end first
    assert out.splitlines() == ["got HUP", "got TERM"]
