"""The reference grammar: every form, Swarm's defaults, and every way to get it wrong."""

from __future__ import annotations

import pytest

from secretd.errors import UsageError
from secretd.refs import (
    Binding,
    check_name,
    check_unique_targets,
    parse_ref,
    parse_refs,
    split_locator,
    target_path,
)
from secretd.spec import SecretRef

GRAMMAR_HINT = "see 'secretd run --help' for the reference grammar"


def usage_error(text: str, bindings: dict[str, Binding] | None = None) -> str:
    with pytest.raises(UsageError) as caught:
        parse_ref(text, bindings)
    assert caught.value.exit_code == 2
    assert "\n" not in caught.value.line()
    return caught.value.line()


def test_a_bare_name_is_a_local_secret_with_swarms_defaults() -> None:
    ref = parse_ref("api_key")
    assert ref == SecretRef(name="api_key", source="local:api_key", target="api_key")
    assert (ref.uid, ref.gid, ref.mode) == (None, None, 0o444)  # None: root, or the caller
    assert target_path(ref) == "/run/secrets/api_key"
    assert target_path(ref, "/var/run/app") == "/var/run/app/api_key"


def test_a_bare_name_follows_its_binding() -> None:
    bindings = {"db": Binding(source="vault:secret/db#pw", target="db.pw", uid=1000, mode=0o400)}
    ref = parse_ref("db", bindings)
    assert (ref.name, ref.source, ref.target, ref.uid, ref.gid, ref.mode) == (
        "db", "vault:secret/db#pw", "db.pw", 1000, None, 0o400,
    )  # fmt: skip
    override = parse_ref("source=db,target=other,mode=0440", bindings)
    assert (override.source, override.target, override.uid, override.mode) == (
        "vault:secret/db#pw", "other", 1000, 0o440,
    )  # fmt: skip


def test_name_equals_uri_binds_on_the_command_line() -> None:
    ref = parse_ref("api_key=vault:secret/app#api_key")
    assert (ref.name, ref.source, ref.target) == ("api_key", "vault:secret/app#api_key", "api_key")
    alias = parse_ref("app=api_key")
    assert (alias.name, alias.source, alias.target) == ("app", "local:api_key", "app")


def test_docker_long_syntax() -> None:
    ref = parse_ref("source=api_key,target=app.key,uid=1000,gid=1001,mode=0400")
    assert ref == SecretRef("api_key", "local:api_key", "app.key", 1000, 1001, 0o400)
    assert parse_ref("src=api_key").target == "api_key"
    absolute = parse_ref("source=env:TOKEN,target=/etc/app/token")
    assert (absolute.name, absolute.target) == ("token", "/etc/app/token")
    assert target_path(absolute) == "/etc/app/token"


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("env:API_KEY", "API_KEY"),
        ("dotenv:.env#DB_PASS", "DB_PASS"),
        ("file:/etc/ssl/server.key", "server.key"),
        ("vault:secret/app#api_key", "api_key"),
        ("aws:prod/db?stage=AWSCURRENT", "db"),
        ("vault:secret/app#api_key?version=2", "api_key"),
    ],
)
def test_a_bare_uri_derives_its_name(text: str, name: str) -> None:
    assert parse_ref(text).name == name


@pytest.mark.parametrize(
    ("mode", "expected"), [("0400", 0o400), ("400", 0o400), ("0o640", 0o640), ("0", 0)]
)
def test_modes_are_octal(mode: str, expected: int) -> None:
    assert parse_ref(f"source=x,mode={mode}").mode == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("source=x,target=../y", "target '../y' in 'source=x,target=../y' has the element '..'"),
        ("source=x,target=a/../b", "has the element '..'"),
        ("source=x,target=a/./b", "has the element '.'"),
        ("source=x,target=..data", "has the element '..data'"),
        ("source=x,target=a//b", f"target 'a//b' in 'source=x,target=a//b' has an empty path "
         f"element: {GRAMMAR_HINT}"),
        ("source=x,target=dir/", "has an empty path element"),
        ("source=x,target=/", "has an empty path element"),
        ("source=x,target=a\0b", f"secret reference contains a NUL byte: {GRAMMAR_HINT}"),
        ("source=x,target=" + "a" * 256, "has an element longer than 255 bytes"),
        ("source=x,target=" + "é" * 128, "has an element longer than 255 bytes"),
        ("source=x,target=" + "/".join(["a" * 200] * 21), "is longer than 4096 bytes"),
        ("..x", "invalid secret name '..x'"),
        ("x=..y", "invalid secret name '..y'"),
        ("source=x,mode=04755", "mode 4755 in 'source=x,mode=04755' has setuid, setgid or sticky "
         "bits: secret files take permission bits only (0000-0777)"),
        ("source=x,mode=02440", "has setuid, setgid or sticky bits"),
        ("source=x,mode=01444", "has setuid, setgid or sticky bits"),
        ("source=x,mode=10000", "mode '10000' in 'source=x,mode=10000' is outside 0000-0777"),
        ("source=x,mode=0999", "invalid mode '0999' in 'source=x,mode=0999': give an octal mode"),
        ("source=x,mode=rw", "invalid mode 'rw'"),
        ("source=x,uid=-1", "uid '-1' in 'source=x,uid=-1' is out of range"),
        ("source=x,uid=4294967295", "is out of range"),
        ("source=x,gid=staff", "invalid gid 'staff' in 'source=x,gid=staff': give a numeric gid"),
        ("source=x,owner=1", "invalid field 'owner=1' in secret reference 'source=x,owner=1'"),
        ("source=x,source=y", "field 'source' given twice"),
        ("target=x", "secret reference 'target=x' has no source: add source=NAME"),
        ("", f"empty secret reference: {GRAMMAR_HINT}"),
        ("x=", "secret reference 'x=' has an empty source"),
        ("=vault:x", "invalid secret name ''"),
        ("a" * 65, f"invalid secret name '{'a' * 65}'"),
        ("env:", "cannot derive a secret name from 'env:': name it: --secret NAME=env:"),
    ],
)  # fmt: skip
def test_bad_references_are_usage_errors_quoting_the_part(text: str, message: str) -> None:
    line = usage_error(text)
    assert message in line


def test_names_follow_swarm() -> None:
    for good in ("a", "A9", "api_key", "tls.key", "my-secret", "a" * 64, "a.b-c_d"):
        assert check_name(good) == good
    for bad in ("", "-a", "a-", "_a", "a_", ".a", "a.", "a b", "a/b", "a:b", "é", "a" * 65):
        with pytest.raises(UsageError, match="invalid secret name"):
            check_name(bad)


def test_two_references_may_not_share_a_target() -> None:
    with pytest.raises(UsageError) as caught:
        parse_refs(["api_key", "source=other,target=api_key"])
    assert caught.value.line() == (
        "secrets 'api_key' and 'other' both target '/run/secrets/api_key': "
        "give one of them another target="
    )
    with pytest.raises(UsageError, match="both target '/run/secrets/a'"):
        parse_refs(["a", "source=b,target=/run/secrets/a"])
    with pytest.raises(UsageError, match="'dir' and 'b' both target"):
        parse_refs(["source=dir,target=conf", "source=b,target=conf/b"])
    with pytest.raises(UsageError, match="both target '/srv/x'"):
        parse_refs(["source=a,target=x", "source=b,target=/srv/x"], secrets_dir="/srv")
    with pytest.raises(UsageError, match="secrets 'a' and 'a' both target"):
        check_unique_targets([parse_ref("a"), parse_ref("a")])
    assert len(parse_refs(["a", "b", "source=a,target=copy"])) == 3


@pytest.mark.parametrize(
    ("locator", "path", "fragment", "query"),
    [
        ("secret/app#api_key", "secret/app", "api_key", {}),
        ("secret/app#api_key?version=3", "secret/app", "api_key", {"version": "3"}),
        ("secret/app?version=3#api_key", "secret/app", "api_key", {"version": "3"}),
        ("prod/db", "prod/db", None, {}),
        (".env#", ".env", None, {}),
    ],
)
def test_split_locator(
    locator: str, path: str, fragment: str | None, query: dict[str, str]
) -> None:
    loc = split_locator(locator)
    assert (loc.path, loc.fragment, dict(loc.query)) == (path, fragment, query)
