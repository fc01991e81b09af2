"""``--config`` and ``--template`` in the sandbox: Swarm's placement, the host untouched."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.run.test_readonly_mounts import mounts_under

pytestmark = pytest.mark.root

CONF = b"listen 8080;\n\x00binary\xff tail\n"
SCRIPT = b"#!/bin/sh\necho from-config\n"


def test_a_config_lands_byte_exact_with_its_owner_and_mode_and_may_run(
    secretd, secret_file, tmp_path: Path
) -> None:
    conf = secret_file(CONF, "app.conf")
    script = secret_file(SCRIPT, "hello.sh")
    key = secret_file("k3y", "key")
    etc = tmp_path / "etc"  # stands for the host's /etc: it must stay as it is
    etc.mkdir()
    (etc / "hosts").write_text("kept\n")
    target = etc / "app" / "app.conf"
    result = secretd(
        "run",
        "--config", f"source=file:{conf},target={target},uid=1000,gid=1001,mode=0440",
        "--config", f"source=file:{script},target={etc}/bin/hello.sh,mode=0555",
        "--secret", f"key=file:{key}",
        "--",
        "sh", "-c",
        f"cat {target} > {tmp_path}/seen; stat -c '%u %g %a' {target}; {etc}/bin/hello.sh; "
        f"cat {etc}/hosts; cat /proc/self/mountinfo",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "seen").read_bytes() == CONF
    owner, ran, hosts, *mountinfo = result.stdout.splitlines()
    assert (owner, ran, hosts) == ("1000 1001 440", "from-config", "kept")
    mounts = mounts_under("\n".join(mountinfo), str(etc))
    config_options = mounts[str(etc / "app")][0]
    assert {"ro", "nosuid", "nodev"} <= config_options and "noexec" not in config_options
    secrets = mounts_under("\n".join(mountinfo), "/run/secrets")["/run/secrets"][0]
    assert {"ro", "noexec"} <= secrets
    assert sorted(os.listdir(etc)) == ["hosts"], "the host's directory is unchanged"


def test_swarm_defaults_target_slash_name_mode_0444_relative_from_the_root(
    secretd, secret_file, tmp_path: Path
) -> None:
    """The default target /<name> is in /, which the sandbox covers in its namespace only."""
    conf = secret_file(CONF, "app.conf")
    name = f"swarm-{os.urandom(4).hex()}.conf"
    relative = str(tmp_path / "cfg" / "app.conf").lstrip("/")
    result = secretd(
        "run",
        "--config", f"{name}=file:{conf}",
        "--config", f"source=file:{conf},target={relative}",
        "--",
        "sh", "-c", f"stat -c '%u %g %a' /{name} /{relative}; cmp /{name} {conf} && pwd",
        cwd=tmp_path,
    )  # fmt: skip
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == f"0 0 444\n0 0 444\n{tmp_path}\n"
    assert not os.path.lexists(f"/{name}")


def test_a_file_config_that_looks_like_a_secret_is_warned_about(
    secretd, secret_file, tmp_path: Path
) -> None:
    conf = secret_file("password = Xk9#mQ2$vL8pZ4wR7tY1\n", "db.ini")
    result = secretd(
        "run", "--config", f"source=file:{conf},target={tmp_path}/c/db.ini", "--", "true"
    )
    assert result.returncode == 0
    [line] = result.stderr.splitlines()
    assert line.startswith("secretd: warning: config 'db.ini' looks like it holds a secret")
    assert "Xk9#" not in line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--secret", "a=file:{f}", "--config", "source=file:{f},target=/run/secrets/a"],
         "secret 'a' and config 'a' both target '/run/secrets/a'"),
        (["--config", "source=file:{f},target=/etc/x", "--config", "source=file:{f},target=/etc/x"],
         "configs 'x' and 'x' both target '/etc/x'"),
        (["--config", "source=file:{f},target=/etc/x,mode=04755"],
         "has setuid, setgid or sticky bits"),
        (["--config", "source=file:{f},size=1"], "invalid field 'size=1' in config reference"),
        (["--template", "source=./t.tmpl"], "has no target"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_exit_2_nothing_started(
    secretd, secret_file, tmp_path: Path, args: list[str], message: str
) -> None:
    value = secret_file("v", "f")
    marker = tmp_path / "started"
    argv = [arg.format(f=value) for arg in args]
    result = secretd("run", *argv, "--", "touch", str(marker))
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.splitlines()
    assert message in line
    assert not marker.exists()


def test_a_template_reading_secrets_is_a_secret_file_and_one_without_is_a_config(
    secretd, secret_file, tmp_path: Path, clean_environ: dict[str, Path]
) -> None:
    user = secret_file("app", "db_user")
    password = secret_file("canary-9b1d", "db_password")
    (tmp_path / "db.yml.tmpl").write_text(
        'user: {{ secret("db_user") }}\npassword: {{ secret("db_password") }}\n'
        'region: {{ env("REGION") }}\n'
    )
    (tmp_path / "plain.tmpl").write_text('region: {{ env("REGION") }}\n')
    (tmp_path / "secretd.toml").write_text(
        f'[secrets.db_user]\nsource = "file:{user}"\n'
        f'[secrets.db_password]\nsource = "file:{password}"\n'
    )
    target = tmp_path / "etc" / "app" / "db.yml"
    temp = tmp_path / "tmp"
    temp.mkdir()
    result = secretd(
        "run", "-e", "REGION=eu-west-1",
        "--template", f"source=db.yml.tmpl,target={target}",
        "--template", f"source=plain.tmpl,target={tmp_path}/etc/plain/plain.yml",
        "--",
        "sh", "-c",
        f"cat {target}; stat -c '%a' {target} {tmp_path}/etc/plain/plain.yml; "
        "cat /proc/self/mountinfo",
        cwd=tmp_path, env={**os.environ, "TMPDIR": str(temp)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rendered = b"user: app\npassword: canary-9b1d"
    for top in (clean_environ["state"], clean_environ["runtime"], temp):
        for path in top.rglob("*"):
            assert not path.is_file() or rendered not in path.read_bytes(), path
    lines = result.stdout.splitlines()
    assert lines[:5] == [
        "user: app", "password: canary-9b1d", "region: eu-west-1", "400", "444"
    ]
    mounts = mounts_under("\n".join(lines[5:]), str(tmp_path / "etc"))
    assert "noexec" in mounts[str(target.parent)][0], "a secret template: the noexec tmpfs"
    assert "noexec" not in mounts[str(tmp_path / "etc" / "plain")][0]
    assert not (tmp_path / "etc").exists()


def test_bare_names_come_from_configs_tables_then_the_stores_configs(
    secretd, secret_file, tmp_path: Path
) -> None:
    conf = secret_file(CONF, "nginx.conf")
    (tmp_path / "secretd.toml").write_text(
        f'[configs.web]\nsource = "file:{conf.name}"\ntarget = "{tmp_path}/etc/web/web.conf"\n'
        'mode = "0440"\n'
    )
    secretd("secret", "create", "stored", "-", input="a-secret-not-a-config")
    secretd("config", "create", "stored", "-", input="config-content")
    result = secretd(
        "run", "--config", "web", "--config", f"source=stored,target={tmp_path}/etc/s/stored",
        "--", "sh", "-c", f"stat -c %a {tmp_path}/etc/web/web.conf; cat {tmp_path}/etc/s/stored",
        cwd=tmp_path,
    )  # fmt: skip
    assert (result.returncode, result.stdout, result.stderr) == (0, "440\nconfig-content", "")
    missing = secretd("run", "--config", "nope", "--", "true", cwd=tmp_path)
    assert missing.returncode == 125
    assert missing.stderr == (
        "secretd: config 'nope' not found in the local store: see 'secretd config ls'\n"
    )


def test_a_replaced_absolute_target_is_seen_inside_the_running_sandbox(tmp_path: Path) -> None:
    """The update a re-issued lease makes (Engine._swap -> Container.update); the absolute
    secret listed first keeps its own value (names once counted by position)."""
    from secretd import mount
    from secretd.runtime.sandbox import SandboxRuntime
    from secretd.spec import RunSpec, Secret, SecretRef

    refs = [
        SecretRef("other", "file:/x", f"{tmp_path}/srv/other"),
        SecretRef("db", "file:/y", f"{tmp_path}/etc/app/db.pass"),
    ]
    old = [Secret("other", "1", b"other-v1"), Secret("db", "1", b"db-v1")]
    script = (
        f"until grep -q db-v2 {tmp_path}/etc/app/db.pass; do sleep 0.05; done; "
        f"cat {tmp_path}/etc/app/db.pass {tmp_path}/srv/other"
    )
    spec = RunSpec(command=("sh", "-c", script), secrets=tuple(refs), runtime="sandbox")
    read, write = os.pipe()
    with open(os.devnull, "rb") as null:
        process = SandboxRuntime().launch(spec, mount.plan(refs, old), (null.fileno(), write, 2))
    os.close(write)
    try:
        process.update(tuple(mount.files_for(refs[1], Secret("db", "2", b"db-v2"))))
        status = process.wait(30)
    finally:
        process.remove()
    with os.fdopen(read, "rb") as out:
        assert (status, out.read()) == (0, b"db-v2other-v1")
