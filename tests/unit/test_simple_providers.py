"""The small providers: ``env:``, ``file:`` and ``dotenv:``, found through the entry points."""

from __future__ import annotations

from pathlib import Path

import pytest

from secretd.backends import available_schemes, load_provider
from secretd.config import load_config
from secretd.errors import ProviderError, SecretNotFound, UsageError
from secretd.refs import parse_ref
from secretd.spec import Secret


def get(text: str) -> Secret:
    ref = parse_ref(text)
    return load_provider(ref.scheme, load_config()).get(ref)


def test_the_registry_knows_every_scheme_and_refuses_others() -> None:
    assert {"local", "env", "dotenv", "file"} <= set(available_schemes())
    with pytest.raises(UsageError, match=r"^unknown provider 'nope': known providers: .*dotenv"):
        load_provider("nope", load_config())


def test_env_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI_TOKEN", "tok-1")
    first = get("env:CI_TOKEN")
    assert (first.name, first.value) == ("CI_TOKEN", b"tok-1")
    assert "tok-1" not in repr(first)
    assert get("token=env:CI_TOKEN").version == first.version
    monkeypatch.setenv("CI_TOKEN", "tok-2")
    assert get("env:CI_TOKEN").version != first.version
    monkeypatch.delenv("CI_TOKEN")
    with pytest.raises(SecretNotFound) as caught:
        get("token=env:CI_TOKEN")
    assert caught.value.line() == (
        "secret 'token': environment variable 'CI_TOKEN' is not set: "
        "export CI_TOKEN before running secretd"
    )


def test_file_reads_bytes(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    path.write_bytes(b"\x00binary\xff\n")
    assert get(f"file:{path}").value == b"\x00binary\xff\n"
    with pytest.raises(SecretNotFound, match=r"^secret 'gone': file '.*/gone' does not exist$"):
        get(f"gone=file:{tmp_path}/gone")
    not_regular = r"^secret 'dir': cannot read '.*': it is a directory, not a regular file$"
    with pytest.raises(ProviderError, match=not_regular):
        get(f"dir=file:{tmp_path}")


def test_dotenv_follows_python_dotenv_rules(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(
        "# comment\n"
        "export API_KEY=abc123\n"
        "QUOTED='with spaces # not a comment'\n"
        'MULTI="line one\nline two"\n'
        "BASE=https://example.test\n"
        "URL=${BASE}/v1\n"
        "EMPTY=\n"
    )
    assert get(f"dotenv:{env}#API_KEY").value == b"abc123"
    assert get(f"dotenv:{env}#QUOTED").value == b"with spaces # not a comment"
    assert get(f"dotenv:{env}#MULTI").value == b"line one\nline two"
    assert get(f"dotenv:{env}#URL").value == b"https://example.test/v1"
    assert get(f"dotenv:{env}#EMPTY").value == b""
    with pytest.raises(SecretNotFound, match=r"^secret 'NOPE': no key 'NOPE' in .*\.env$"):
        get(f"dotenv:{env}#NOPE")
    with pytest.raises(UsageError, match=r"names no key: write dotenv:PATH#KEY$"):
        get(f"x=dotenv:{env}")


def test_dotenv_paths_in_secretd_toml_are_relative_to_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / ".env").write_text("DB_PASS=pw\n")
    (project / "secretd.toml").write_text('[secrets.db]\nsource = "dotenv:.env#DB_PASS"\n')
    config = load_config(cwd=project)
    ref = parse_ref("db", config.secrets)
    monkeypatch.chdir(tmp_path)  # the working directory does not matter any more
    assert load_provider("dotenv", config).get(ref).value == b"pw"


def test_a_malformed_dotenv_names_file_and_line_never_the_value(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text('OK=1\nTOKEN="hunter2-unterminated\nNEXT=2\n')
    with pytest.raises(UsageError) as caught:
        get(f"dotenv:{env}#OK")
    assert caught.value.line() == (
        f"cannot parse {env} at line 2: use KEY=VALUE lines "
        "(python-dotenv's rules: quote a value with spaces or '#')"
    )
    env.write_text("A=1\nB=2\nthis line has no equals hunter2\n")
    with pytest.raises(UsageError, match=r"at line 3: ") as caught:
        get(f"dotenv:{env}#A")
    assert "hunter2" not in caught.value.line() and caught.value.__cause__ is None
    env.write_bytes(b"A=\xff\xfe\n")
    with pytest.raises(UsageError, match=r"is not UTF-8 text \(line 1\): save it as UTF-8$"):
        get(f"dotenv:{env}#A")
    with pytest.raises(SecretNotFound, match="does not exist"):
        get(f"dotenv:{tmp_path}/missing.env#A")
