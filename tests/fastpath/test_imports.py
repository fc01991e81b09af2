"""What a run loads: the thin client, through a daemon, only built-in modules and its own
three; a run in-process, no archive modules (``shutil`` brings bz2 and lzma)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .conftest import Fast

ROOT = Path(__file__).resolve().parents[2]
THIN = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
from secretd import thin
leave = thin._leave
def probe(status):
    open(OUT, "w").write(__import__("_json").encode_basestring_ascii(" ".join(sys.modules)))
    leave(status)
thin._leave = probe
sys.argv = ["secretd", *sys.argv[1:]]
thin.main()
"""
IN_PROCESS = """
import atexit, json, runpy, sys
sys.argv = ["secretd", *sys.argv[1:]]
atexit.register(lambda: open(OUT, "w").write(json.dumps(" ".join(sys.modules))))
runpy.run_module("secretd", run_name="__main__", alter_sys=True)
"""


def loaded(script: str, args: list[str], env: dict[str, str], tmp_path: Path) -> set[str]:
    out = tmp_path / "modules"
    flags = ["-IS"] if script is THIN else []
    command = [sys.executable, *flags, "-c", f"OUT = {str(out)!r}\n{script}", *args]
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return set(json.loads(out.read_text()).split())


def test_the_thin_client_loads_no_cli(fast: Fast, tmp_path: Path) -> None:
    modules = loaded(THIN, ["run", "--", "true"], fast.env(), tmp_path)
    ours = {m for m in modules if m.startswith("secretd")}
    assert ours == {"secretd", "secretd.thin", "secretd.trust", "secretd.errors", "secretd.wire"}
    heavy = {"click", "json", "socket", "signal", "pathlib", "typing", "re", "enum", "site"}
    assert modules & heavy == set()
    assert modules & {"importlib", "warnings"} == set()  # the package's lazy names: 0.6 ms


def test_a_run_in_process_loads_no_archivers(fast: Fast, tmp_path: Path) -> None:
    args = ["run", "--no-daemon", "--", "true"]
    modules = loaded(IN_PROCESS, args, fast.env(daemon=False), tmp_path)
    assert "secretd.engine" in modules  # the probe saw the run
    assert modules & {"shutil", "bz2", "lzma", "zipfile", "tarfile"} == set()


def test_a_plain_run_in_process_loads_nothing_it_does_not_call(fast: Fast, tmp_path: Path) -> None:
    """A stored secret in a sandbox: no OpenSSL hashes (``hashlib``), no TOML parser
    without a config file, no ``calendar`` (reading the access log needs it, writing
    does not); each cost 1-3 ms of every run."""
    args = ["run", "--no-daemon", "--secret", "api_key", "--", "true"]
    modules = loaded(IN_PROCESS, args, fast.env(daemon=False), tmp_path)
    assert {"secretd.engine", "secretd.store"} <= modules  # the probe saw the run
    assert modules & {"hashlib", "_hashlib", "tomllib", "calendar", "secrets"} == set()


def test_a_plain_run_in_process_starts_no_program_and_checks_no_variable(
    fast: Fast, tmp_path: Path
) -> None:
    """No ``subprocess`` (and its ``locale``): the sandbox waits on a pidfd, only podman's
    image check and ``exec:`` hooks start programs; no ``exposure.py`` without ``-e``, no
    ``shlex`` for messages that are not printed (~1.5 ms of every run, together)."""
    args = ["run", "--no-daemon", "--secret", "api_key", "--", "true"]
    modules = loaded(IN_PROCESS, args, fast.env(daemon=False), tmp_path)
    assert "secretd.engine" in modules  # the probe saw the run
    assert modules & {"subprocess", "locale", "shlex", "secretd.exposure"} == set()


def test_a_plain_run_in_process_loads_no_click(fast: Fast, tmp_path: Path) -> None:
    """``cli/quickrun.py`` reads a plain ``run`` command line; click (and its ~10 ms)
    only for the lines it leaves to click."""
    args = ["run", "--no-daemon", "--secret", "api_key", "--", "true"]
    modules = loaded(IN_PROCESS, args, fast.env(daemon=False), tmp_path)
    assert "secretd.engine" in modules  # the probe saw the run
    assert {m for m in modules if m == "click" or m.startswith("click.")} == set()
    assert "secretd.cli.app" not in modules
