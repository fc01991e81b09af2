"""Configuration layers: flag > SECRETD_* > ./secretd.toml > user config > /etc, with origins."""

from __future__ import annotations

from pathlib import Path

import pytest

from secretd import config as config_module
from secretd.config import load_config
from secretd.errors import UsageError
from secretd.refs import Binding
from tests.conftest import Runner


@pytest.fixture
def layers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Three config files in temporary places; the 'system' one stands in for /etc."""
    system = tmp_path / "etc" / "secretd" / "config.toml"
    user = tmp_path / "xdg" / "secretd" / "config.toml"
    project = tmp_path / "project" / "secretd.toml"
    for path in (system, user, project):
        path.parent.mkdir(parents=True)
    monkeypatch.setattr(config_module, "SYSTEM_CONFIG", system)
    return {"system": system, "user": user, "project": project}


def environ(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), **extra}


def test_each_layer_overrides_the_one_below(layers: dict[str, Path], tmp_path: Path) -> None:
    layers["system"].write_text(
        'runtime = "sandbox"\nlog_level = "error"\ncache_ttl = 1\nhost = "unix:///etc.sock"\n'
        'strict = true\n[providers.vault]\naddress = "http://system"\nnamespace = "sys"\n'
    )
    layers["user"].write_text(
        'runtime = "oci"\nlog_level = "info"\ncache_ttl = 2\n'
        '[providers.vault]\naddress = "http://user"\n'
    )
    layers["project"].write_text('runtime = "docker"\nlog_level = "debug"\n')
    env = environ(tmp_path, SECRETD_LOG_LEVEL="warning", SECRETD_RUNTIME="podman")
    config = load_config(
        {"runtime": "runc", "log_level": None}, None, env, layers["project"].parent
    )

    assert config.runtime == "runc" and config.origins["runtime"] == "flag"
    assert config.log_level == "warning"
    assert config.origins["log_level"] == "env SECRETD_LOG_LEVEL"
    assert config.cache_ttl == 2.0 and config.origins["cache_ttl"] == str(layers["user"])
    assert config.host == "unix:///etc.sock" and config.origins["host"] == str(layers["system"])
    assert config.strict is True
    assert config.provider("vault") == {"address": "http://user", "namespace": "sys"}
    assert config.origins["providers.vault.address"] == str(layers["user"])
    assert config.origins["providers.vault.namespace"] == str(layers["system"])
    assert config.files == (layers["system"], layers["user"], layers["project"])


def test_project_file_beats_user_file_and_env_beats_both(
    layers: dict[str, Path], tmp_path: Path
) -> None:
    layers["user"].write_text('runtime = "oci"\nstate_dir = "/user/state"\n')
    layers["project"].write_text('runtime = "docker"\n')
    cwd = layers["project"].parent
    config = load_config(environ=environ(tmp_path), cwd=cwd)
    assert (config.runtime, config.origins["runtime"]) == ("docker", str(layers["project"]))
    assert config.state_dir == Path("/user/state")
    env = environ(tmp_path, SECRETD_STATE_DIR="/env/state", SECRETD_STRICT="yes")
    config = load_config(environ=env, cwd=cwd)
    assert config.state_dir == Path("/env/state") and config.strict is True
    assert config.origins["state_dir"] == "env SECRETD_STATE_DIR"


def test_defaults_when_nothing_is_configured(layers: dict[str, Path], tmp_path: Path) -> None:
    config = load_config(environ=environ(tmp_path), cwd=tmp_path)
    assert config.files == () and config.secrets == {} and config.runtime == "auto"
    assert config.origins["state_dir"] == "default"
    assert config.state_dir == Path("/var/lib/secretd")  # the tests run as root


def test_config_flag_replaces_the_project_file(layers: dict[str, Path], tmp_path: Path) -> None:
    layers["project"].write_text('runtime = "docker"\n')
    other = tmp_path / "other.toml"
    other.write_text('runtime = "podman"\n')
    config = load_config(config_file=other, environ=environ(tmp_path), cwd=layers["project"].parent)
    assert config.runtime == "podman" and config.files == (other,)
    with pytest.raises(UsageError, match=r"^config file .*missing.toml does not exist$"):
        load_config(config_file=tmp_path / "missing.toml", environ=environ(tmp_path))


def test_bindings_and_relative_paths_anchor_to_their_file(
    layers: dict[str, Path], tmp_path: Path
) -> None:
    layers["project"].write_text(
        '[secrets.api_key]\nsource = "dotenv:.env#API_KEY"\ntarget = "app/key"\nuid = 1000\n'
        'mode = "0400"\n[secrets.cert]\nsource = "file:/abs/cert.pem"\n'
        '[secrets.token]\nsource = "vault:secret/app#token"\n'
        '[providers.local]\npath = "data/store.db"\nkey_file = "keys/store.key"\n'
    )
    project = layers["project"].parent
    config = load_config(environ=environ(tmp_path), cwd=tmp_path / "elsewhere")
    assert config.secrets == {}  # ./secretd.toml is looked up in the working directory
    config = load_config(environ=environ(tmp_path), cwd=project)
    assert config.secrets["api_key"] == Binding(
        source=f"dotenv:{project}/.env#API_KEY", target="app/key", uid=1000, mode=0o400
    )
    assert config.secrets["cert"].source == "file:/abs/cert.pem"
    assert config.secrets["token"].source == "vault:secret/app#token"
    assert config.provider("local") == {
        "path": f"{project}/data/store.db",
        "key_file": f"{project}/keys/store.key",
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("runtim = 'oci'\n", "unknown setting 'runtim' in {path}: known settings: "),
        ("runtime = \n", "cannot parse {path}: "),
        ("cache_ttl = 'soon'\n", "cache_ttl 'soon' from {path} is not a number"),
        ("[secrets.api_key]\ntarget = 'x'\n", "[secrets.api_key] in {path} has no source"),
        ("[secrets.'../x']\nsource = 'env:X'\n", "invalid secret name '../x'"),
        ("[secrets.a]\nsource = 'env:A'\ntarget = '../a'\n", "has the element '..'"),
        ("[secrets.a]\nsource = 'env:A'\nmode = 0o4755\n", "has setuid, setgid or sticky bits"),
        ("[secrets.a]\nsource = 'env:A'\nmode = 4096\n", "is outside 0000-0777"),
        ("[secrets.a]\nsource = 'env:A'\nuid = true\n", "[secrets.a] uid in {path} is a boolean"),
        ("[secrets.a]\nsource = 'env:A'\ngid = 1000.5\n", "[secrets.a] gid in {path} is a number"),
    ],
)
def test_bad_files_are_usage_errors_naming_the_file(
    layers: dict[str, Path], tmp_path: Path, text: str, message: str
) -> None:
    layers["project"].write_text(text)
    with pytest.raises(UsageError) as caught:
        load_config(environ=environ(tmp_path), cwd=layers["project"].parent)
    assert message.format(path=layers["project"]) in caught.value.line()
    assert "\n" not in caught.value.line()


@pytest.mark.parametrize(
    ("toml", "args", "stderr"),
    [
        (
            '[daemon]\nmax_connections = "many"\n',
            ("daemon",),
            "[daemon] max_connections in {file} is a string: give a whole number of at least 1",
        ),
        (
            "[daemon]\nread_timeout = -1\n",
            ("daemon",),
            "[daemon] read_timeout in {file} is -1: give a number of seconds above 0",
        ),
        (
            '[daemon]\nengines = "sandbox"\n',
            ("daemon",),
            "[daemon] engines in {file} is a string: give an array of names",
        ),
        (
            "[daemon]\nsocket = {path = 1}\n",
            ("info",),
            "[daemon] socket in {file} is a table: give a path (a string)",
        ),
        (
            '[secrets.api_key]\nsource = "local:x"\ntarget = {a = 1}\n',
            ("run", "--secret", "api_key", "--", "true"),
            "[secrets.api_key] target in {file} is a table: give a path (a string)",
        ),
        (
            "[providers.local]\nkeep_versions = true\n",
            ("secret", "ls"),
            "[providers.local] keep_versions in {file} is a boolean: "
            "give a whole number of at least 1",
        ),
        (  # a credential in the wrong place is named by its type, never shown
            '[providers]\nvault = "hvs.token-value"\n',
            ("info",),
            "[providers] vault in {file} is a string: give a table",
        ),
        ('daemon = "on"\n', ("info",), "daemon in {file} is a string: give a table"),
        (  # a key with a newline stays on the line, quoted as TOML quotes it
            '[secrets]\n"a\\nb" = 1\n',
            ("info",),
            '[secrets] "a\\nb" in {file} is an integer: give a table',
        ),
        ("cache_ttl = 1979-05-27\n", ("info",), "cache_ttl in {file} is a date or time: "
         "give a number of seconds"),
    ],
)  # fmt: skip
def test_a_value_of_the_wrong_type_is_one_line_naming_file_key_and_type(
    secretd: Runner, tmp_path: Path, toml: str, args: tuple[str, ...], stderr: str
) -> None:
    file = tmp_path / "secretd.toml"
    file.write_text(toml)
    result = secretd(*args)
    assert (result.returncode, result.stderr) == (2, f"secretd: {stderr.format(file=file)}\n")
