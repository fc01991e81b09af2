"""Many secrets in one reference, through the real CLI and sandbox: ``env:APP_*`` (a file
per variable, the variables gone from the command's environment), ``NAME=dotenv:F#*`` (a
tree), ``env:VAR?file`` (GitLab's File-type variables) and ``file_env=VAR``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import secretd
from tests.conftest import Runner

pytestmark = pytest.mark.root

SHOW = 'cd /run/secrets && for f in $(find . -type f | sort); do echo "$f $(cat $f)"; done'


@pytest.fixture
def app_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_DB", "db-pass-1")
    monkeypatch.setenv("APP_TOKEN", "tok-2")
    monkeypatch.setenv("APPLE", "not-matched")


def run(secretd: Runner, *args: str) -> tuple[int, str, str]:
    result = secretd("run", "--no-daemon", *args)
    return result.returncode, result.stdout, result.stderr


def test_an_env_pattern_is_one_file_per_variable_and_takes_them_out_of_the_env(
    secretd: Runner, app_env: None
) -> None:
    script = f'{SHOW}; echo "env: ${{APP_DB-gone}} ${{APP_TOKEN-gone}} $APPLE $APP_DB_FILE"'
    status, out, err = run(secretd, "--file-env", "--secret", "env:APP_*", "--", "sh", "-c", script)
    assert (status, err) == (0, "")
    assert out == (
        "./APP_DB db-pass-1\n./APP_TOKEN tok-2\nenv: gone gone not-matched /run/secrets/APP_DB\n"
    )


def test_a_named_env_pattern_is_a_tree_with_the_references_options(
    secretd: Runner, app_env: None
) -> None:
    status, out, err = run(
        secretd, "--secret", "source=env:APP_*,target=app,mode=0400", "--", "sh", "-c",
        f"{SHOW}; stat -c '%a' /run/secrets/app/APP_DB",
    )  # fmt: skip
    assert (status, err) == (0, "")
    assert out == "./app/APP_DB db-pass-1\n./app/APP_TOKEN tok-2\n400\n"


@pytest.mark.parametrize(
    ("ref", "code", "message"),
    [
        ("env:NOPE_*", 125, "secretd: no environment variable matches 'NOPE_*' (secret reference "
         "'env:NOPE_*'): export them before running secretd, or check the pattern\n"),
        ("env:*", 2, "secretd: invalid variable pattern '*' in 'env:*'"),
        ("source=env:APP_*,file_env=X", 2, "secretd: file_env= names one variable, but "
         "'env:APP_*' stands for several secrets"),
        ("source=env:APP_DB,file_env=1X", 2, "secretd: invalid variable name '1X'"),
        ("dotenv:ci.env#*", 2, "secretd: cannot derive a secret name from 'dotenv:ci.env#*'"),
    ],
)  # fmt: skip
def test_a_bad_pattern_is_one_line_before_anything_starts(
    secretd: Runner, app_env: None, tmp_path: Path, ref: str, code: int, message: str
) -> None:
    marker = tmp_path / "ran"
    status, out, err = run(secretd, "--secret", ref, "--", "touch", str(marker))
    assert (status, out) == (code, "")
    assert err.startswith(message) and err.count("\n") == 1, err
    assert not marker.exists()


def test_a_dotenv_tree_has_a_file_per_key(secretd: Runner, tmp_path: Path) -> None:
    (tmp_path / "ci.env").write_text("USER=app\nPASS='p w#1'\nexport HOST=db\n")
    status, out, err = run(
        secretd, "--secret", "creds=dotenv:ci.env#*", "--secret", "h=dotenv:ci.env#HO*",
        "--", "sh", "-c", SHOW,
    )  # fmt: skip
    assert (status, err) == (0, "")
    assert out == "./creds/HOST db\n./creds/PASS p w#1\n./creds/USER app\n./h/HOST db\n"


def test_a_dotenv_key_that_cannot_be_a_file_name_is_refused(
    secretd: Runner, tmp_path: Path
) -> None:
    (tmp_path / "ci.env").write_text("OK=1\n'..x'=2\n")
    status, out, err = run(secretd, "--secret", "c=dotenv:ci.env#*", "--", "true")
    assert (status, out) == (2, "")
    assert err == (
        "secretd: secret 'c': key '..x' in ci.env cannot be a file name: rename the key, "
        "or name the keys one by one: dotenv:PATH#KEY\n"
    )


def test_a_file_type_variable_is_read_through_the_file_it_names(
    secretd: Runner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "gl-file").write_bytes(b"-----BEGIN KEY-----\nabc\n")
    monkeypatch.setenv("SSH_KEY", str(tmp_path / "gl-file"))
    status, out, err = run(
        secretd, "--secret", "env:SSH_KEY?file", "--", "sh", "-c",
        'cat /run/secrets/SSH_KEY; echo "${SSH_KEY-gone}"',
    )  # fmt: skip
    assert (status, err) == (0, "")
    assert out == "-----BEGIN KEY-----\nabc\ngone\n"

    os.mkfifo(tmp_path / "fifo")
    monkeypatch.setenv("SSH_KEY", str(tmp_path / "fifo"))
    status, _, err = run(secretd, "--secret", "env:SSH_KEY?file", "--", "true")
    assert status == 125 and "it is a FIFO, not a regular file" in err and err.count("\n") == 1
    monkeypatch.setenv("SSH_KEY", "")
    status, _, err = run(secretd, "--secret", "env:SSH_KEY?file", "--", "true")
    assert (status, err) == (
        125,
        "secretd: secret 'SSH_KEY': environment variable 'SSH_KEY' is not set to a file's "
        "path: export SSH_KEY before running secretd\n",
    )


def test_file_env_sets_the_variable_an_image_reads(
    secretd: Runner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PW", "pg-password")
    (tmp_path / "secretd.toml").write_text(
        '[secrets.db]\nsource = "env:PW"\nfile_env = "DB_PASSWORD_FILE"\n'
    )
    status, out, err = run(
        secretd, "--secret", "source=env:PW,target=/etc/pg/pw,file_env=POSTGRES_PASSWORD_FILE",
        "--secret", "db", "--", "sh", "-c",
        'echo "$POSTGRES_PASSWORD_FILE $(cat $POSTGRES_PASSWORD_FILE) $DB_PASSWORD_FILE"',
    )  # fmt: skip
    assert (status, err) == (0, "")
    assert out == "/etc/pg/pw pg-password /run/secrets/db\n"


def test_the_library_expands_patterns_too(app_env: None) -> None:
    with secretd.resolve(["env:APP_*"]) as found:
        assert [(s.name, s.value) for s in found] == [
            ("APP_DB", b"db-pass-1"),
            ("APP_TOKEN", b"tok-2"),
        ]
