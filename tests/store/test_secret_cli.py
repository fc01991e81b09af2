"""``secretd secret`` and ``secretd store`` as a user runs them: real processes, exact output."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from secretd.broker import Broker
from secretd.config import load_config
from secretd.errors import NotInStore
from secretd.refs import parse_ref
from secretd.sealing import Passphrases
from secretd.store import MAX_VALUE, LocalStore
from tests.conftest import Runner

NAME_HINT = "use 1-64 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"


def read(name: str, environ: dict[str, str] | None = None) -> tuple[int, bytes]:
    return LocalStore.from_config(load_config(), Passphrases(environ or {})).read(name)


def test_create_ls_inspect_the_quick_start(secretd: Runner) -> None:
    created = secretd("secret", "create", "api_key", "-", input="s3cr3t")
    assert (created.returncode, created.stdout, created.stderr) == (0, "api_key\n", "")
    listed = secretd("secret", "ls")
    header, row = listed.stdout.splitlines()
    assert header.split() == ["NAME", "VERSION", "CREATED", "UPDATED", "LABELS"]
    assert row.split()[:2] == ["api_key", "1"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", row.split()[2])
    inspected = secretd("secret", "inspect", "api_key")
    assert inspected.returncode == 0 and "s3cr3t" not in inspected.stdout + listed.stdout
    [item] = json.loads(inspected.stdout)
    assert set(item) == {"ID", "Version", "CreatedAt", "UpdatedAt", "Spec", "Versions"}
    assert item["Spec"] == {"Name": "api_key", "Labels": {}}
    assert item["Version"] == {"Index": 1} and item["CreatedAt"] == item["UpdatedAt"]
    assert read("api_key") == (1, b"s3cr3t")


def test_values_come_from_a_file_or_stdin_byte_for_byte(secretd: Runner, tmp_path: Path) -> None:
    key = tmp_path / "server.key"
    key.write_bytes(b"-----BEGIN KEY-----\n\x00\xff\n")
    assert secretd("secret", "create", "tls", str(key)).returncode == 0
    assert read("tls") == (1, b"-----BEGIN KEY-----\n\x00\xff\n")
    assert secretd("secret", "create", "piped", input=b"line\n").returncode == 0
    assert read("piped") == (1, b"line\n")


def test_a_value_on_the_command_line_is_taken_for_a_file_name(secretd: Runner) -> None:
    result = secretd("secret", "create", "api_key", "s3cr3t")
    assert result.returncode == 2
    assert result.stderr == (
        "secretd: cannot read 's3cr3t': No such file or directory: "
        "give a readable file, or - for stdin\n"
    )


@pytest.mark.parametrize(
    ("args", "stderr"),
    [
        (("../x", "-"), f"secretd: invalid secret name '../x': {NAME_HINT}\n"),
        (("-", "-"), "secretd: invalid secret name '-': " + NAME_HINT + "\n"),
        (("api_key\n", "-"), f"secretd: invalid secret name 'api_key\\n': {NAME_HINT}\n"),
        (("a" * 65, "-"), f"secretd: invalid secret name '{'a' * 65}': {NAME_HINT}\n"),
        (("ok", "--label"), "secretd: Option '--label' requires an argument\n"),
        (("ok", "--label", "=v", "-"), "secretd: invalid label '=v': use --label KEY=VALUE\n"),
        (("ok", "a", "b"), None),
    ],
)
def test_bad_create_input_exits_2_with_one_line(
    secretd: Runner, args: tuple[str, ...], stderr: str | None
) -> None:
    result = secretd("secret", "create", *args, input="value")
    assert result.returncode == 2
    assert result.stdout == "" and result.stderr.count("\n") == 1
    assert result.stderr.startswith("secretd: ")
    if stderr is not None:
        assert result.stderr == stderr


def test_empty_and_oversized_values_are_refused(secretd: Runner, tmp_path: Path) -> None:
    empty = secretd("secret", "create", "x", "-", input="")
    assert (empty.returncode, empty.stderr) == (
        2,
        "secretd: the value for secret 'x' is empty: a secret needs at least one byte\n",
    )
    big = tmp_path / "big"
    big.write_bytes(b"a" * (MAX_VALUE + 10))
    result = secretd("secret", "create", "x", str(big))
    assert result.returncode == 2 and "500 KiB or larger" in result.stderr
    assert secretd("secret", "ls", "-q").stdout == ""


def test_labels_ls_formats_and_rotate(secretd: Runner) -> None:
    labels = ("--label", "env=prod", "-l", "team=core", "--label", "flag")
    assert secretd("secret", "create", "db_pass", *labels, "-", input="p1").returncode == 0
    assert secretd("secret", "create", "api_key", "-", input="k1").returncode == 0
    rotated = secretd("secret", "rotate", "db_pass", "-", input="p2")
    assert (rotated.returncode, rotated.stdout) == (0, "db_pass: version 2\n")

    assert secretd("secret", "ls", "-q").stdout == "api_key\ndb_pass\n"
    rows = secretd("secret", "ls").stdout.splitlines()
    assert [row.split()[0] for row in rows] == ["NAME", "api_key", "db_pass"]
    assert rows[2].split()[1] == "2" and rows[2].endswith("env=prod,flag=,team=core")
    as_json = json.loads(secretd("secret", "ls", "--format", "json").stdout)
    assert [(i["Name"], i["Version"], i["Labels"]) for i in as_json] == [
        ("api_key", 1, {}),
        ("db_pass", 2, {"env": "prod", "flag": "", "team": "core"}),
    ]
    assert as_json[1]["UpdatedAt"] > as_json[1]["CreatedAt"]
    [item] = json.loads(secretd("secret", "inspect", "db_pass").stdout)
    assert [v["Index"] for v in item["Versions"]] == [1, 2]
    assert read("db_pass") == (2, b"p2")


def test_rotate_and_create_conflicts(secretd: Runner) -> None:
    missing = secretd("secret", "rotate", "nope", "-", input="v")
    assert (missing.returncode, missing.stderr) == (
        1,
        "secretd: secret 'nope' not found in the local store: "
        "create it: printf %s VALUE | secretd secret create nope -\n",
    )
    secretd("secret", "create", "x", "-", input="v")
    again = secretd("secret", "create", "x", "-", input="w")
    assert again.returncode == 1
    assert again.stderr == (
        "secretd: secret 'x' already exists in the local store: "
        "add a version with 'secretd secret rotate x'\n"
    )


def test_inspect_and_rm_report_missing_names_after_doing_the_rest(secretd: Runner) -> None:
    for name in ("a", "b", "c"):
        secretd("secret", "create", name, "-", input="v")
    inspected = secretd("secret", "inspect", "a", "nope", "c")
    assert inspected.returncode == 1
    assert [i["Spec"]["Name"] for i in json.loads(inspected.stdout)] == ["a", "c"]
    assert inspected.stderr.startswith("secretd: secret 'nope' not found in the local store: ")
    removed = secretd("secret", "rm", "a", "gone", "b", "lost")
    assert (removed.returncode, removed.stdout) == (1, "a\nb\n")
    assert removed.stderr == (
        "secretd: secrets 'gone', 'lost' not found in the local store: see 'secretd secret ls'\n"
    )
    assert secretd("secret", "ls", "-q").stdout == "c\n"
    bad = secretd("secret", "rm", "c", "../x")
    assert bad.returncode == 2 and secretd("secret", "ls", "-q").stdout == "c\n"


def test_store_init_and_rekey(secretd: Runner, state_dir: Path) -> None:
    init = secretd("store", "init")
    assert init.stdout == (
        f"created the local store {state_dir / 'store.db'}, protected by the key file "
        f"{state_dir / 'store.key'} (back it up: it opens the store)\n"
    )
    again = secretd("store", "init")
    assert again.returncode == 1 and "already exists" in again.stderr
    secretd("secret", "create", "x", "-", input="value")

    env = dict(os.environ, SECRETD_NEW_PASSPHRASE="new pass")
    rekey = secretd("store", "rekey", "--passphrase", env=env)
    assert (rekey.returncode, rekey.stderr) == (0, "")
    assert rekey.stdout.endswith("protected by a passphrase\n")
    assert not (state_dir / "store.key").exists()
    assert read("x", {"SECRETD_PASSPHRASE": "new pass"}) == (1, b"value")

    both = secretd("store", "rekey", "--passphrase", "--key-file")
    assert (both.returncode, both.stderr) == (
        2,
        "secretd: --passphrase and --key-file exclude each other: choose one\n",
    )
    env = dict(os.environ, SECRETD_PASSPHRASE="new pass")
    assert secretd("store", "rekey", "--key-file", env=env).returncode == 0
    assert read("x") == (1, b"value")


def test_a_passphrase_without_a_terminal_or_the_variable_is_a_clear_error(
    secretd: Runner,
) -> None:
    env = dict(os.environ, SECRETD_PASSPHRASE="pw")
    assert secretd("store", "init", "--passphrase", env=env).returncode == 0
    # a new session has no controlling terminal, like a service or a CI job
    result = secretd("secret", "create", "x", "-", input="v", start_new_session=True)
    assert (result.returncode, result.stderr) == (
        1,
        "secretd: the local store needs a passphrase and there is no terminal to ask on: "
        "set SECRETD_PASSPHRASE\n",
    )
    listed = secretd("secret", "ls", start_new_session=True)
    assert listed.returncode == 0  # metadata needs no passphrase


def test_every_command_has_help(secretd: Runner) -> None:
    for command in ("create", "ls", "inspect", "rotate", "rm"):
        result = secretd("secret", command, "--help")
        assert result.returncode == 0 and "Usage: secretd secret " + command in result.stdout
    for command in ("init", "rekey"):
        assert secretd("store", command, "--help").returncode == 0


@pytest.mark.root  # needs root to become 'nobody'
@pytest.mark.parametrize(
    "args",
    [
        ("secret", "ls"),
        ("secret", "create", "a", "-"),
        ("store", "init"),
        ("run", "--secret", "a", "--", "true"),
    ],
)
def test_a_state_directory_the_user_cannot_enter_is_one_line(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    (tmp_path / "state").mkdir(mode=0o700)  # pytest's tmp_path: root's, 0700
    with tempfile.TemporaryDirectory(prefix="secretd-nobody-") as own:
        os.chown(own, 65534, 65534)
        env = dict(
            os.environ,
            SECRETD_STATE_DIR=str(tmp_path / "state"),
            SECRETD_RUNTIME_DIR=f"{own}/run",
            HOME=own,
            XDG_CONFIG_HOME=f"{own}/config",
        )
        nobody = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"]
        result = subprocess.run(
            [*nobody, sys.executable, "-m", "secretd", *args],
            env=env, cwd="/", input="v", capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode == (125 if args[0] == "run" else 1)
    assert result.stderr == (
        f"secretd: cannot use the local store {tmp_path}/state/store.db: Permission denied: "
        f"check the permissions of {tmp_path}/state, or set SECRETD_STATE_DIR to a directory "
        "you own\n"
    )


@pytest.mark.root  # needs root to become 'nobody'
def test_a_store_file_the_user_cannot_open_is_one_line(secretd: Runner) -> None:
    with tempfile.TemporaryDirectory(prefix="secretd-nobody-") as own:
        env = dict(os.environ, SECRETD_STATE_DIR=f"{own}/state", HOME=own)
        assert secretd("secret", "create", "a", "-", input="v", env=env).returncode == 0
        os.chown(own, 65534, 65534)
        os.chown(f"{own}/state", 65534, 65534)  # the directory is nobody's, root's store.db not
        nobody = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"]
        env["SECRETD_RUNTIME_DIR"] = f"{own}/run"
        results = [
            subprocess.run(
                [*nobody, sys.executable, "-m", "secretd", "secret", "ls"],
                env=env | config, cwd="/", capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            for config in ({"XDG_CONFIG_HOME": f"{own}/config"}, {})
        ]
    assert [(result.returncode, result.stderr) for result in results] == [
        (
            1,
            f"secretd: cannot open the local store {own}/state/store.db: unable to open "
            "database file: check its permissions\n",
        ),
        (  # the test's own XDG_CONFIG_HOME is under pytest's root-only directory
            2,
            f"secretd: cannot read {os.environ['XDG_CONFIG_HOME']}/secretd/config.toml: "
            "Permission denied\n",
        ),
    ]


def test_a_missing_name_suggests_the_close_ones_the_user_has(
    secretd: Runner, tmp_path: Path
) -> None:
    for name in ("api_key", "db_password"):
        assert secretd("secret", "create", name, "-", input="v").returncode == 0
    (tmp_path / "secretd.toml").write_text('[secrets.tls_cert]\nsource = "env:TLS_CERT"\n')
    create = "create it: printf %s VALUE | secretd secret create zzz -"
    for args, code, hint in [
        (("run", "--secret", "api_kye", "--", "true"), 125, "did you mean 'api_key'?"),
        (("run", "--secret", "tls_crt", "--", "true"), 125, "did you mean 'tls_cert'?"),
        (("secret", "rotate", "db_pasword", "-"), 1, "did you mean 'db_password'?"),
        (("secret", "inspect", "api-key"), 1, "did you mean 'api_key'?"),
        (("secret", "rm", "zzz"), 1, create),
    ]:
        name = args[2]
        stderr = f"secretd: secret {name!r} not found in the local store: {hint}\n"
        result = secretd(*args, input="v")
        assert (result.returncode, result.stderr) == (code, stderr), args


def test_the_broker_suggests_names_only_when_asked(secretd: Runner) -> None:
    """The daemon's broker never does: it would tell one user another's secret names."""
    assert secretd("secret", "create", "api_key", "-", input="v").returncode == 0
    config = load_config()
    ref = parse_ref("api_kye")
    with pytest.raises(NotInStore) as quiet:
        Broker(config).resolve([ref])
    assert quiet.value.hint == "create it: printf %s VALUE | secretd secret create api_kye -"
    with pytest.raises(NotInStore) as helpful:
        Broker(config, suggest=True).resolve([ref])
    assert helpful.value.hint == "did you mean 'api_key'?"
