"""The thin client looks for the daemon where the full CLI does (client.candidates), for
root and for another user, with and without SECRETD_HOST, SECRETD_RUNTIME_DIR and
XDG_RUNTIME_DIR: the two are written apart (the thin client loads no config code)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPARE = f"""
import json, os, sys
sys.path.insert(0, {str(ROOT)!r})
from secretd import client, thin
from secretd.config import load_config
environ = json.loads(sys.argv[1])
os.chdir("/")
paths, named = client.candidates(load_config(environ=environ))
print(json.dumps([[str(p) for p in paths], thin.sockets(environ)]))
"""
ENVIRONMENTS = [
    {},
    {"XDG_RUNTIME_DIR": "/run/user/4242"},
    {"SECRETD_RUNTIME_DIR": "/srv/secretd-run"},
    {"SECRETD_HOST": "unix:///srv/other.sock", "XDG_RUNTIME_DIR": "/run/user/4242"},
]


@pytest.mark.parametrize("environ", ENVIRONMENTS, ids=lambda e: ",".join(e) or "bare")
@pytest.mark.parametrize("user", ["root", "nobody"])
def test_the_same_sockets_as_the_full_cli(user: str, environ: dict[str, str]) -> None:
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    prefix = [] if user == "root" else nobody
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", **environ}
    done = subprocess.run(
        [*prefix, sys.executable, "-c", COMPARE, json.dumps(environ)],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    full, thin = json.loads(done.stdout)
    assert thin == full
