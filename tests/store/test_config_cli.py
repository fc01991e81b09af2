"""``secretd config`` as a user runs it: kept apart from secrets, content shown on request."""

from __future__ import annotations

import json
import sqlite3

from secretd.store import LocalStore
from tests.conftest import Runner

CONF = "server {\n  listen 8080;\n}\n"


def test_create_ls_inspect_pretty_rm(secretd: Runner) -> None:
    created = secretd("config", "create", "nginx.conf", "-", "--label", "app=web", input=CONF)
    assert (created.returncode, created.stdout, created.stderr) == (0, "nginx.conf\n", "")
    header, row = secretd("config", "ls").stdout.splitlines()
    assert header.split() == ["NAME", "CREATED", "LABELS"]
    assert row.split()[0] == "nginx.conf" and row.split()[2] == "app=web"
    [item] = json.loads(secretd("config", "inspect", "nginx.conf").stdout)
    assert item["Spec"] == {"Name": "nginx.conf", "Labels": {"app": "web"}}
    assert CONF not in json.dumps(item)
    pretty = secretd("config", "inspect", "--pretty", "nginx.conf").stdout
    assert pretty.endswith(f"Data:\n{CONF}\n") and "Name:\t\tnginx.conf" in pretty
    assert secretd("config", "rm", "nginx.conf").stdout == "nginx.conf\n"
    assert secretd("config", "ls", "-q").stdout == ""


def test_configs_and_secrets_with_one_name_stay_apart(secretd: Runner) -> None:
    secretd("secret", "create", "app", "-", input="s3cr3t-value")
    secretd("config", "create", "app", "-", input=CONF)
    assert secretd("secret", "ls", "-q").stdout == "app\n"
    assert secretd("config", "ls", "-q").stdout == "app\n"
    assert secretd("config", "inspect", "--pretty", "app").stdout.endswith(CONF + "\n")
    secretd("config", "rm", "app")
    assert secretd("secret", "ls", "-q").stdout == "app\n"


def test_a_store_made_before_configs_existed_is_read_and_gains_them(
    secretd: Runner, store: LocalStore
) -> None:
    store.create("old", b"value")
    with sqlite3.connect(store.path) as conn:
        conn.execute("DROP TABLE IF EXISTS configs")
    assert secretd("config", "ls", "-q").stdout == ""
    assert secretd("config", "create", "c", "-", input=CONF).returncode == 0
    assert store.read("old") == (1, b"value")
    assert store.read_config("c") == CONF.encode()


def test_mistakes_are_one_line(secretd: Runner) -> None:
    missing = secretd("config", "inspect", "nope", check=False)
    assert missing.returncode != 0
    assert missing.stderr.strip().startswith("secretd: config 'nope' not found in the local store")
    assert len(missing.stderr.strip().splitlines()) == 1
    secretd("config", "create", "c", "-", input=CONF)
    again = secretd("config", "create", "c", "-", input=CONF, check=False)
    assert "config 'c' already exists" in again.stderr and again.returncode != 0
    bad = secretd("config", "create", "bad/name", "-", input=CONF, check=False)
    assert bad.returncode == 2 and "invalid config name 'bad/name'" in bad.stderr


def test_content_that_looks_like_a_secret_is_warned_about_never_shown(secretd: Runner) -> None:
    content = "db:\n  password: Xk9#mQ2$vL8pZ4wR7tY1\n"
    created = secretd("config", "create", "db.yml", "-", input=content)
    assert created.returncode == 0
    [line] = created.stderr.splitlines()
    assert line.startswith("secretd: warning: config 'db.yml' looks like it holds a secret")
    assert "--template" in line and "Xk9#" not in line
