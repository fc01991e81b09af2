"""``secretd run --template`` in the sandbox: the rendered file, where it lives, and what a
mistake does (nothing started). The runc and Docker runs live with those runtimes' tests."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import Runner
from tests.run.conftest import CANARY, host_secretd_mounts
from tests.support.plaintext import files_holding

pytestmark = pytest.mark.root

TEMPLATE = """\
production:
  password: {{ secret("db_password") }}
  api_key: {{ secret("api=file:./api.key") | b64encode }}
  region: {{ env("REGION") }}
"""


def test_a_template_with_two_secrets_and_env_renders_on_a_readonly_tmpfs(
    secretd: Runner, tmp_path: Path, clean_environ: dict[str, Path]
) -> None:
    started = time.time() - 1
    probe = tmp_path / "probe"  # the scan below would see a canary written to disk
    probe.write_text(CANARY)
    os.mkfifo(tmp_path / "fifo")  # never opened: the scan would wait for a writer forever
    assert files_holding([CANARY.encode()], [tmp_path], started) == [str(probe)]
    probe.unlink()
    assert secretd("secret", "create", "db_password", "-", input=CANARY).returncode == 0
    (tmp_path / "api.key").write_text("k3y")
    (tmp_path / "db.yml.tmpl").write_text(TEMPLATE)
    script = (
        "cat /etc/app/db.yml; stat -c '%a %u %F' /etc/app/db.yml; "
        "grep ' /etc/app ' /proc/mounts | cut -d' ' -f3,4; "
        "echo x 2>/dev/null > /etc/app/db.yml || echo refused"
    )
    result = secretd(
        "run",
        "--secret",
        "db_password",
        "-e",
        "REGION=eu-west-1",
        "--template",
        "source=./db.yml.tmpl,target=/etc/app/db.yml",
        "--",
        "sh",
        "-c",
        script,
    )
    assert (result.returncode, result.stderr) == (0, "")
    lines = result.stdout.splitlines()
    assert lines[:4] == [
        "production:",
        f"  password: {CANARY}",
        "  api_key: azN5",
        "  region: eu-west-1",
    ]
    assert lines[4] == "400 0 regular file"  # it read a secret: a secret, for its owner only
    fstype, options = lines[5].split()
    assert fstype == "tmpfs" and options.split(",")[0] == "ro" and "noexec" in options
    assert lines[6:] == ["refused"]
    assert not Path("/etc/app").exists()
    assert host_secretd_mounts() == []
    roots = [clean_environ["state"], clean_environ["runtime"], Path(tempfile.gettempdir())]
    assert files_holding([CANARY.encode()], [*roots, Path("/dev/shm")], started) == []


def test_the_done_when_command_prints_the_rendered_file(secretd: Runner, tmp_path: Path) -> None:
    assert secretd("secret", "create", "db_password", "-", input=CANARY).returncode == 0
    (tmp_path / "db.yml.tmpl").write_text('password: {{ secret("db_password") }}\n')
    result = secretd(
        "run",
        "--secret",
        "db_password",
        "--template",
        "source=./db.yml.tmpl,target=/etc/app/db.yml",
        "--",
        "cat",
        "/etc/app/db.yml",
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, f"password: {CANARY}\n", "")


def test_a_template_without_secrets_is_a_config(secretd: Runner, tmp_path: Path) -> None:
    (tmp_path / "env.tmpl").write_text('region: {{ env("REGION", "eu") }}\n')
    result = secretd(
        "run",
        "--template",
        "source=./env.tmpl,target=/etc/app/env.yml",
        "--",
        "stat",
        "-c",
        "%a %u",
        "/etc/app/env.yml",
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "444 0\n", "")


@pytest.mark.parametrize(
    ("text", "code", "message"),
    [
        ("a\n{{ nope }}\n", 2, "line 2: 'nope' is undefined: templates know secret('NAME'), "
         "config('NAME'), env('VAR') and run.KEY"),
        ("{% if %}", 2, "line 1: Expected an expression, got 'end of statement block': "
         "see docs/configs.md#templates"),
        ("{{ cycler.__init__.__globals__.os }}", 2, "line 1: '__init__' is not allowed: "
         "templates may not reach Python internals or change values"),
        ("a\n{{ secret('nope') }}", 125, "line 2: secret 'nope' not found in the local store: "
         "create it: printf %s VALUE | secretd secret create nope -"),
    ],
)  # fmt: skip
def test_a_bad_template_starts_nothing(
    secretd: Runner, tmp_path: Path, text: str, code: int, message: str
) -> None:
    template = tmp_path / "bad.tmpl"
    template.write_text(text)
    marker = tmp_path / "started"
    result = secretd(
        "run",
        "--template",
        "source=./bad.tmpl,target=/etc/app/x",
        "--",
        "touch",
        str(marker),
    )
    assert (result.returncode, result.stdout) == (code, "")
    assert result.stderr == f"secretd: template '{template}', {message}\n"
    assert not marker.exists()
    assert host_secretd_mounts() == []


PROBE = """
import atexit, runpy, sys
sys.argv = ["secretd", "run", *sys.argv[1:]]
atexit.register(lambda: print("jinja2" in sys.modules))  # secretd ends with os._exit after these
runpy.run_module("secretd", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize(
    ("args", "imported"),
    [
        (("--", "true"), False),
        (("--template", "source=./t.tmpl,target=/etc/app/t", "--", "true"), True),
    ],
)
def test_jinja2_is_imported_only_by_a_run_with_templates(
    tmp_path: Path, args: tuple[str, ...], imported: bool
) -> None:
    (tmp_path / "t.tmpl").write_text("{{ run.name }}\n")
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=60
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, f"{imported}\n", "")
