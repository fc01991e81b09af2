"""``secretd template check|render`` as a user runs them, next to a real local store."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.conftest import Runner

CANARY = "canary-7f3a9c1e"
TEMPLATE = """\
db:
  password: {{ secret("db_password") }}
  token: {{ secret("vault:secret/app#token") | b64encode }}
  region: {{ env("REGION") }}
  zone: {{ env("ZONE", "a") }}
  name: {{ run.name }}
{% set which = "x" %}{{ config(which) }}
{{ config("nginx") | indent(2) }}
"""


def write(tmp_path: Path, text: str = TEMPLATE) -> Path:
    path = tmp_path / "db.yml.tmpl"
    path.write_text(text)
    return path


def test_check_lists_every_name_and_resolves_none(secretd: Runner, tmp_path: Path) -> None:
    result = secretd("template", "check", str(write(tmp_path)))
    assert (result.returncode, result.stderr) == (0, "")
    assert [line.split() for line in result.stdout.splitlines()] == [
        ["KIND", "NAME", "LINE"],
        ["secret", "db_password", "2"],
        ["secret", "vault:secret/app#token", "3"],
        ["env", "REGION", "4"],
        ["env", "ZONE", "5"],
        ["run", "name", "6"],
        ["config", "(computed)", "7"],
        ["config", "nginx", "8"],
    ]


def test_check_as_json(secretd: Runner, tmp_path: Path) -> None:
    result = secretd("template", "check", "--format", "json", str(write(tmp_path)))
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found[0] == {"kind": "secret", "name": "db_password", "line": 2}
    assert {"kind": "config", "name": None, "line": 7} in found and len(found) == 7


def test_render_shows_placeholders_never_a_stored_value(secretd: Runner, tmp_path: Path) -> None:
    created = secretd("secret", "create", "db_password", "-", input=CANARY)
    assert created.returncode == 0, created.stderr
    environ = {**os.environ, "REGION": "eu-west-1"}
    result = secretd("template", "render", str(write(tmp_path)), env=environ)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == (
        "db:\n"
        "  password: <secret:db_password>\n"
        "  token: PHNlY3JldDp2YXVsdDpzZWNyZXQvYXBwI3Rva2VuPg==\n"
        "  region: eu-west-1\n"
        "  zone: a\n"
        "  name: <run:name>\n"
        "<config:x>\n"
        "<config:nginx>\n"
    )
    assert CANARY not in result.stdout + result.stderr


def test_delimiters_for_go_and_helm_files(secretd: Runner, tmp_path: Path) -> None:
    path = write(tmp_path, 'pw: [[ secret("db") ]]\nname: {{ .Values.name }}\n')
    result = secretd("template", "render", "--delimiters", "[[ ]]", str(path))
    assert (result.returncode, result.stdout) == (0, "pw: <secret:db>\nname: {{ .Values.name }}\n")
    checked = secretd("template", "check", "--delimiters", "[[ ]]", str(path))
    assert checked.stdout.splitlines()[1].split() == ["secret", "db", "1"]
    bad = secretd("template", "check", "--delimiters", "[[", str(path))
    assert (bad.returncode, bad.stdout) == (2, "")
    assert bad.stderr == (
        "secretd: invalid template delimiters '[[': "
        "give the start and end of a value separated by a space, e.g. '[[ ]]'\n"
    )


def test_mistakes_are_one_line_exit_2(secretd: Runner, tmp_path: Path) -> None:
    path = write(tmp_path, "ok\n{{ secret('db') }} {{ db_pasword }}\n")
    where = f"secretd: template '{path}', line 2:"
    known = "templates know secret('NAME'), config('NAME'), env('VAR') and run.KEY"
    for command in ("check", "render"):
        result = secretd("template", command, str(path))
        assert (result.returncode, result.stdout) == (2, "")
        assert result.stderr == f"{where} 'db_pasword' is undefined: {known}\n"
    write(tmp_path, "ok\n{{ ''.__class__.__mro__ }}\n")
    result = secretd("template", "render", str(path))
    assert result.returncode == 2
    assert result.stderr == (
        f"{where} '__class__' is not allowed: "
        "templates may not reach Python internals or change values\n"
    )
    write(tmp_path, "ok\n{% if %}\n")
    result = secretd("template", "check", str(path))
    assert result.returncode == 2
    assert result.stderr == f"{where} Expected an expression, got 'end of statement block': " + (
        "see docs/configs.md#templates\n"
    )


def test_a_fifo_or_a_missing_file_is_refused_without_hanging(
    secretd: Runner, tmp_path: Path
) -> None:
    fifo = tmp_path / "fifo.tmpl"
    os.mkfifo(fifo)
    result = secretd("template", "check", str(fifo), timeout=30)
    assert (result.returncode, result.stderr) == (
        2,
        f"secretd: cannot read template '{fifo}': it is a FIFO, not a regular file\n",
    )
    result = secretd("template", "render", "missing.tmpl")
    assert result.stderr == (
        "secretd: cannot read template 'missing.tmpl': No such file or directory\n"
    )
