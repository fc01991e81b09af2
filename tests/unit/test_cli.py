"""The CLI boundary: version, help without heavy imports, one-line errors, ``secretd info``."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from secretd import __version__
from tests.conftest import Runner

HEAVY = ("boto3", "botocore", "hvac", "docker", "fuse", "detect_secrets", "jinja2")
PROBE = """
import atexit, json, runpy, sys
sys.argv = ["secretd", *sys.argv[2:]]
def report():
    heavy = sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(open(OUT).read())))
    open(OUT, "w").write(json.dumps(heavy))
atexit.register(report)  # secretd ends with os._exit, once the atexit functions ran
runpy.run_module("secretd", run_name="__main__", alter_sys=True)
"""


def test_version(secretd: Runner) -> None:
    result = secretd("--version")
    assert (result.returncode, result.stdout, result.stderr) == (0, f"secretd {__version__}\n", "")


@pytest.mark.parametrize(
    "args",
    [
        ("--help",),
        ("secret", "--help"),
        ("secret", "ls"),
        ("store", "--help"),
        ("info",),
        ("template", "--help"),
    ],
)
def test_light_commands_do_not_import_heavy_libraries(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    out = tmp_path / "modules.json"
    out.write_text(json.dumps(HEAVY))
    script = f"OUT = {str(out)!r}\n{PROBE}"
    result = subprocess.run(
        [sys.executable, "-c", script, "probe", *args], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text()) == []
    if args == ("--help",):
        assert "Usage: secretd" in result.stdout and "secret" in result.stdout


def test_probe_does_see_imports(tmp_path: Path) -> None:
    """The probe above would notice a heavy import (here: one made on purpose)."""
    out = tmp_path / "modules.json"
    out.write_text(json.dumps(["sqlite3"]))
    script = f"OUT = {str(out)!r}\nimport sqlite3\n{PROBE}"
    subprocess.run([sys.executable, "-c", script, "probe", "--version"], check=True, timeout=60)
    assert json.loads(out.read_text()) == ["sqlite3"]


@pytest.mark.parametrize(
    ("args", "code", "stderr"),
    [
        (("nope",), 2, "secretd: No such command 'nope': see 'secretd --help'\n"),
        (("secret", "ls", "--format", "xml"), 2, None),
        (
            ("--config", "missing.toml", "info"),
            2,
            "secretd: config file missing.toml does not exist\n",
        ),
        (("secret", "inspect"), 2, None),
    ],
)
def test_errors_are_one_line_with_an_exit_code(
    secretd: Runner, args: tuple[str, ...], code: int, stderr: str | None
) -> None:
    result = secretd(*args)
    assert result.returncode == code
    assert result.stderr.startswith("secretd: ") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr and result.stdout == ""
    if stderr is not None:
        assert result.stderr == stderr


def test_a_broken_config_file_is_a_usage_error(secretd: Runner, tmp_path: Path) -> None:
    (tmp_path / "secretd.toml").write_text("runtime = \n")
    result = secretd("info")
    assert result.returncode == 2
    assert result.stderr.startswith(f"secretd: cannot parse {tmp_path / 'secretd.toml'}: ")
    assert result.stderr.endswith(": fix the TOML syntax\n") and result.stderr.count("\n") == 1


def test_info_shows_origins_and_no_secret_values(
    secretd: Runner, tmp_path: Path, clean_environ: dict[str, Path]
) -> None:
    user = clean_environ["config"] / "secretd" / "config.toml"
    user.parent.mkdir(parents=True)
    user.write_text(
        'runtime = "oci"\n[providers.vault]\naddress = "http://127.0.0.1:8200"\n'
        'token = "hvs.user-token-value"\n[providers.vault.approle]\nrole_id = "app"\n'
        'secret_id = "approle-secret-value"\n'
    )
    (tmp_path / ".env").write_text("API_KEY=dotenv-secret-value\n")
    (tmp_path / "secretd.toml").write_text(
        'runtime = "docker"\n[secrets.api_key]\nsource = "dotenv:.env#API_KEY"\n'
        "[providers.local]\nkeep_versions = 3\n"
    )
    env = dict(os.environ, SECRETD_LOG_LEVEL="info", SECRETD_PASSPHRASE="passphrase-value")
    text = secretd("info", env=env)
    data = json.loads(secretd("info", "--format", "json", env=env).stdout)
    assert text.returncode == 0 and text.stderr == ""
    lines = text.stdout.splitlines()
    project = tmp_path / "secretd.toml"
    assert f"  runtime = docker  ({project})" in lines
    assert "  log_level = info  (env SECRETD_LOG_LEVEL)" in lines
    assert f"  state_dir = {clean_environ['state']}  (env SECRETD_STATE_DIR)" in lines
    assert f"  api_key = dotenv:{tmp_path}/.env#API_KEY  ({project})" in lines
    assert f"  vault.token = <set>  ({user})" in lines
    assert f"  vault.approle.secret_id = <set>  ({user})" in lines
    assert f"  vault.approle.role_id = app  ({user})" in lines
    assert f"  local.keep_versions = 3  ({project})" in lines
    assert data["providers"]["vault"]["token"] == {"value": "<set>", "origin": str(user)}
    assert data["settings"]["runtime"] == {"value": "docker", "origin": str(project)}
    for value in (
        "user-token-value",
        "approle-secret-value",
        "dotenv-secret-value",
        "passphrase-value",
    ):
        assert value not in text.stdout + json.dumps(data)


INJECT = """
import sys
import secretd.store as store
def broken(self, *args):
    raise ValueError("canary-" + "value: no exception text may reach stderr")
store.LocalStore.list_secrets = broken
sys.argv = ["secretd", *sys.argv[1:]]
from secretd.cli import main
main()
"""


@pytest.mark.parametrize("debug", [False, True])
def test_a_bug_is_one_line_naming_its_type_and_place_never_its_text(
    tmp_path: Path, debug: bool
) -> None:
    args = ["--debug"] * debug + ["secret", "ls"]
    result = subprocess.run(
        [sys.executable, "-c", INJECT, *args], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 125 and result.stdout == ""
    assert "canary" not in result.stderr
    last = result.stderr.splitlines()[-1]
    assert re.fullmatch(
        r"secretd: internal error: ValueError in secretd/cli/secret\.py:\d+ \(list_\); "
        r"please report it",
        last,
    ), last
    if debug:  # the stack, for the report, still without the exception's text
        assert "\nTraceback (exception texts left out):\n" in result.stderr
        assert "in broken" in result.stderr
    else:
        assert result.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "stderr"),
    [
        (("secret", "create"), "Missing argument 'NAME': see 'secretd secret create --help'"),
        (("secret", "ls", "--bogus"), "No such option '--bogus': see 'secretd secret ls --help'"),
        (
            ("store", "init", "--pasphrase"),
            "No such option '--pasphrase' (did you mean '--passphrase'?): "
            "see 'secretd store init --help'",
        ),
        (
            ("info", "--format", "x"),
            "Invalid value for '--format': 'x' is not one of 'text', 'json': "
            "see 'secretd info --help'",
        ),
        (("secret", "nope"), "No such command 'nope': see 'secretd secret --help'"),
    ],
)
def test_click_errors_read_as_one_sentence(
    secretd: Runner, args: tuple[str, ...], stderr: str
) -> None:
    result = secretd(*args)
    assert (result.returncode, result.stderr) == (2, f"secretd: {stderr}\n")


def test_control_characters_in_a_file_name_are_escaped(secretd: Runner, tmp_path: Path) -> None:
    config = tmp_path / "a\x1b[2J\nb\x9b.toml"
    config.write_text("runtime = \n")
    result = secretd("--config", str(config), "info")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert f"{tmp_path}/a\\x1b[2J\\x0ab\\x9b.toml" in result.stderr
    assert "\x1b" not in result.stderr and "\x9b" not in result.stderr


class _HostileVault(BaseHTTPRequestHandler):
    """Answers every request with a 400 whose error text tries to take over the terminal."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        body = json.dumps({"errors": ["\x1b[2J\x1b]0;owned\x07\nsecretd: all fine\u202e"]})
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    do_POST = do_PUT = do_GET

    def log_message(self, *args: object) -> None:
        pass


def test_control_characters_from_a_server_are_escaped_on_one_line(secretd: Runner) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HostileVault)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        env = dict(os.environ, VAULT_ADDR=f"http://127.0.0.1:{server.server_port}")
        env["VAULT_TOKEN"] = "hvs.hostile-test-token"
        result = secretd("run", "--secret", "k=vault:secret/app#k", "--", "true", env=env)
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 125, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("secretd: ")
    assert "\\x1b[2J\\x1b]0;owned\\x07" in result.stderr and "all fine\\u202e" in result.stderr
    assert not any(not char.isprintable() for char in result.stderr.rstrip("\n"))


def test_daemon_log_lines_escape_what_clients_and_servers_wrote() -> None:
    from secretd.cli.daemon import _TextFormatter

    record = logging.LogRecord(
        "secretd.daemon", logging.INFO, __file__, 1, "run failed: %s", ("x\x1b[2J\nforged",), None
    )
    line = _TextFormatter().format(record)
    assert line.endswith(" info secretd.daemon: run failed: x\\x1b[2J\\x0aforged")


def test_info_escapes_control_characters_from_a_config_file(
    secretd: Runner, tmp_path: Path
) -> None:
    (tmp_path / "secretd.toml").write_text(
        '[secrets.api_key]\nsource = "vault:secret/app\\u001b[2J\\nforged#k"\n'
    )
    result = secretd("info")
    assert result.returncode == 0 and "\x1b" not in result.stdout
    assert "  api_key = vault:secret/app\\x1b[2J\\x0aforged#k  (" in result.stdout
