"""``secretd compose`` against the real dockerd and the real Docker Compose v2: Swarm's
layout in plain Docker, no value anywhere Docker keeps state, every tmpfs gone at down."""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path

import pytest

from secretd.config import load_config
from secretd.runtime.engines.reaper import remove_orphan_mounts, watch_destroyed
from tests.compose.conftest import IMAGE, Project, container
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.docker, pytest.mark.root]

TWO_SERVICES = f"""\
services:
  web:
    image: {IMAGE}
    command: ["sleep", "600"]
    network_mode: none
    secrets:
      - db_pass
      - source: api_key
        target: api.key
        uid: "1000"
        gid: "1000"
        mode: 0400
      - source: api_key
        target: /etc/app/key
        mode: 0o440
      - source: tok
        mode: "0440"
    configs:
      - source: app_conf
        target: /etc/app.d/app.conf
  worker:
    image: {IMAGE}
    command: ["sleep", "600"]
    network_mode: none
    secrets:
      - source: tok
        uid: "65534"
        mode: 288
secrets:
  db_pass:
    file: ./db_pass.txt
  api_key:
    environment: API_KEY
  tok:
    external: true
    name: shared_token
configs:
  app_conf:
    content: |
      level=debug
"""


def values() -> dict[str, str]:
    return {name: f"sk-{name}-{secrets.token_hex(10)}" for name in ("db", "api", "tok")}


def two_services(project: Project) -> dict[str, str]:
    """The issue's file: a file:, an environment: (from .env) and an external (local
    store) secret, and a config; the values it will read."""
    made = values()
    project.write(TWO_SERVICES, **{"db_pass.txt": made["db"], ".env": f"API_KEY={made['api']}\n"})
    created = project.runner("secret", "create", "shared_token", "-", input=made["tok"])
    assert created.returncode == 0, created.stderr
    return made


def test_up_gives_swarm_layout_on_a_read_only_tmpfs_and_down_removes_it(project: Project) -> None:
    made = two_services(project)
    done = project.secretd("up", "-d")
    assert done.returncode == 0, done.stderr
    web, worker = container(project, "web"), container(project, "worker")

    assert files(project, web, "/run/secrets /etc/app /etc/app.d") == {
        "api.key": ("-r--------", "1000", "1000"),
        "db_pass": ("-r--r--r--", "0", "0"),
        "tok": ("-r--r-----", "0", "0"),
        "key": ("-r--r-----", "0", "0"),
        "app.conf": ("-r--r--r--", "0", "0"),
    }
    assert files(project, worker, "/run/secrets") == {"tok": ("-r--r-----", "65534", "0")}
    read = project.docker("exec", web, "cat", "/run/secrets/db_pass", "/run/secrets/api.key",
                          "/etc/app/key", "/run/secrets/tok", "/etc/app.d/app.conf")  # fmt: skip
    assert read == made["db"] + made["api"] + made["api"] + made["tok"] + "level=debug\n"
    table = project.docker("exec", web, "cat", "/proc/mounts").splitlines()
    mounted = {fields[1]: (fields[2], fields[3].split(",")[0]) for fields in map(str.split, table)}
    for where in ("/run/secrets", "/etc/app", "/etc/app.d"):
        assert mounted[where] == ("tmpfs", "ro"), where
    project.docker("exec", web, "touch", "/run/secrets/x", check=False)  # read-only: fails
    assert "x" not in project.docker("exec", web, "ls", "/run/secrets").split()

    seen = json.dumps([project.inspect(web), project.inspect(worker)])
    seen += project.docker("diff", web) + project.docker("diff", worker)
    for value in made.values():
        assert value not in seen
    assert len(list((project.runtime / "mounts").iterdir())) == 2  # one tmpfs per service
    listed = json.loads(project.runner("ps", "--format", "json").stdout)
    assert {(row["name"], row["secrets"]) for row in listed} >= {
        (f"{project.name}-web-1", "db_pass,api_key,tok"), (f"{project.name}-worker-1", "tok"),
    }  # secretd ps shows compose's containers, with the names of their secrets

    for command in (("stop", "-t", "0", "worker"), ("start", "worker")):  # the tmpfs stays
        assert project.secretd(*command).returncode == 0
    assert project.docker("exec", worker, "cat", "/run/secrets/tok") == made["tok"]

    down = project.secretd("down", "-t", "0")
    assert down.returncode == 0, down.stderr
    assert project.containers() == []
    assert project.mounts() == []


def files(project: Project, cid: str, dirs: str) -> dict[str, tuple[str, str, str]]:
    """``ls -ln`` of directories in a container: name -> (mode, uid, gid)."""
    listing = project.docker("exec", cid, "sh", "-c", f"ls -ln {dirs}")
    return {
        fields[-1]: (fields[0], fields[2], fields[3])
        for fields in map(str.split, listing.splitlines())
        if fields and fields[0].startswith("-")
    }


def test_the_transformed_model_holds_paths_never_values(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    from secretd.broker import Broker
    from secretd.compose.model import find_compose
    from secretd.compose.project import Project as Spec
    from secretd.compose.project import load_project, mount_services, resolve

    made = two_services(project)
    monkeypatch.chdir(project.path)
    config = load_config()
    loaded = load_project(Spec(tuple(find_compose()), name=project.name), config)
    mounted = mount_services(loaded, resolve(loaded, Broker(config)), config.runtime_dir,
                             project.docker.host)  # fmt: skip
    try:
        text = json.dumps(mounted.model)
        assert "secrets" not in mounted.model and "configs" not in mounted.model
        web = mounted.model["services"]["web"]
        assert {v["target"] for v in web["volumes"]} == {"/run/secrets", "/etc/app", "/etc/app.d"}
        assert all(v["read_only"] and v["type"] == "bind" for v in web["volumes"])
        assert all(Path(v["source"]).is_dir() for v in web["volumes"])  # directories only
    finally:
        mounted.remove()
    for value in [*made.values(), "level=debug"]:
        assert value not in text


def test_a_tmpfs_stays_until_the_last_container_of_a_scaled_service_is_gone(
    project: Project,
) -> None:
    """Both removers (the daemon's event reaper, and the sweep 'secretd run' makes before
    each launch) keep a tmpfs that one of a service's containers still uses."""
    made = values()
    project.write(
        f"services:\n  worker:\n    image: {IMAGE}\n    command: [sleep, '600']\n"
        "    network_mode: none\n    secrets: [tok]\nsecrets:\n  tok:\n    file: ./tok.txt\n",
        **{"tok.txt": made["tok"]},
    )
    runtime = load_config().runtime_dir
    reaper = watch_destroyed(runtime)
    try:
        done = project.secretd("up", "-d", "--scale", "worker=2")
        assert done.returncode == 0, done.stderr
        first, second = project.containers()
        assert remove_orphan_mounts(runtime) == []  # both containers are alive

        project.docker("rm", "-f", first)
        time.sleep(1)  # the destroy event reached the reaper
        assert remove_orphan_mounts(runtime) == []
        assert project.docker("exec", second, "cat", "/run/secrets/tok") == made["tok"]
        assert len(list((runtime / "mounts").iterdir())) == 1

        project.docker("rm", "-f", second)
        wait_for(lambda: project.mounts() == [], "the reaper to remove the tmpfs")
    finally:
        reaper.stop()


def test_run_rm_reads_its_secrets_and_leaves_nothing(project: Project) -> None:
    made = two_services(project)
    done = project.secretd("run", "--rm", "-T", "worker", "sh", "-c", "cat /run/secrets/*; exit 3")
    assert (done.returncode, done.stdout) == (3, made["tok"]), done.stderr
    assert project.containers() == []
    assert project.mounts() == []


def test_config_prints_the_plan_and_no_value(project: Project) -> None:
    made = two_services(project)
    shown = project.secretd("config")
    assert shown.returncode == 0, shown.stderr
    rows = [line.split() for line in shown.stdout.splitlines()]
    assert rows[0] == ["SERVICE", "KIND", "NAME", "SOURCE", "TARGET", "OWNER", "MODE"]
    assert ["web", "secret", "api_key", "env:API_KEY", "/run/secrets/api.key", "1000:1000",
            "0400"] in rows  # fmt: skip
    assert ["worker", "secret", "tok", "local:shared_token", "(external)", "/run/secrets/tok",
            "65534:0", "0440"] in rows  # fmt: skip
    assert ["web", "config", "app_conf", "(inline", "content)", "/etc/app.d/app.conf", "0:0",
            "(default)", "0444"] in rows  # fmt: skip
    as_json = project.secretd("config", "--format", "json")
    db_pass = {
        "service": "web", "kind": "secret", "name": "db_pass", "target": "/run/secrets/db_pass",
        "owner": "0:0 (default)", "mode": "0444", "source": f"file:{project.path / 'db_pass.txt'}",
    }  # fmt: skip
    assert db_pass in json.loads(as_json.stdout)
    for value in made.values():
        assert value not in shown.stdout + shown.stderr + as_json.stdout
    assert project.containers() == [] and project.mounts() == []


def test_a_profile_given_to_secretd_compose_starts_its_services(project: Project) -> None:
    made = values()
    service = f"    image: {IMAGE}\n    command: [sleep, '600']\n    network_mode: none\n"
    project.write(
        f"services:\n  web:\n{service}    secrets: [tok]\n"
        f"  debug:\n{service}    profiles: [debug]\n    secrets: [tok]\n"
        "secrets:\n  tok:\n    file: ./tok.txt\n",
        **{"tok.txt": made["tok"]},
    )
    done = project.runner("compose", "-p", project.name, "--profile", "debug", "up", "-d",
                          cwd=project.path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert project.docker("exec", container(project, "debug"), "cat", "/run/secrets/tok") == (
        made["tok"]
    )
    assert len(project.containers()) == 2


def test_a_build_secret_stays_with_compose_and_the_container_gets_its_own(
    project: Project,
) -> None:
    made = values()
    (project.path / "Dockerfile").write_text(
        f"FROM {IMAGE}\nRUN --mount=type=secret,id=tok wc -c < /run/secrets/tok > /built-with\n"
    )
    project.write(
        f"services:\n  app:\n    build:\n      context: .\n      network: none\n"
        f"      secrets: [tok]\n    image: {project.name}-app\n    command: [sleep, '600']\n"
        "    network_mode: none\n    secrets: [{source: tok, mode: 0400}]\n"
        "secrets:\n  tok:\n    file: ./tok.txt\n",
        **{"tok.txt": made["tok"]},
    )
    done = project.secretd("up", "-d", "--build")
    assert done.returncode == 0, done.stderr
    cid = container(project, "app")
    assert project.docker("exec", cid, "cat", "/built-with").strip() == str(len(made["tok"]))
    assert files(project, cid, "/run/secrets") == {"tok": ("-r--------", "0", "0")}
    project.docker("rmi", "-f", f"{project.name}-app", check=False)


def test_x_secretd_wins_over_the_plain_compose_source_and_driver_fields_warn(
    project: Project,
) -> None:
    """Compose's JSON drops x-* extensions below the top level; secretd still sees them."""
    project.write(
        f"services:\n  web:\n    image: {IMAGE}\n    secrets: [api]\n    configs: [conf]\n"
        "secrets:\n  api:\n    file: ./placeholder.txt\n    driver: vault\n"
        "    labels: {team: a}\n    x-secretd:\n      source: env:SECRETD_TEST_API\n"
        "configs:\n  conf:\n    file: ./placeholder.txt\n"
        "    x-secretd: {source: 'dotenv:app.env#LEVEL'}\n",
        **{"placeholder.txt": "dev"},
    )
    shown = project.secretd("config", "--format", "json")
    assert shown.returncode == 0, shown.stderr
    assert [(row["name"], row["source"]) for row in json.loads(shown.stdout)] == [
        ("api", "env:SECRETD_TEST_API"), ("conf", "dotenv:app.env#LEVEL"),
    ]  # fmt: skip
    assert shown.stderr.splitlines() == [
        "secretd: warning: secret 'api': driver is ignored, secretd fills the files itself "
        "(remove driver: or keep it for a swarm)",
        "secretd: warning: secret 'api': labels is ignored, secretd fills the files itself "
        "(remove labels: or keep it for a swarm)",
    ]


def test_compose_reading_stdin_is_refused(project: Project) -> None:
    project.write(f"services:\n  web:\n    image: {IMAGE}\n")
    done = project.runner("compose", "-f", "-", "config", cwd=project.path, input="services: {}\n")
    assert done.returncode == 2 and "-f -" in done.stderr, done.stderr


def test_up_again_keeps_an_unchanged_service_and_gives_a_changed_one_its_new_value(
    project: Project,
) -> None:
    project.write(
        f"services:\n  app:\n    image: {IMAGE}\n    command: [sleep, '600']\n"
        "    stop_signal: KILL\n    network_mode: none\n    secrets: [tok]\n"
        "secrets:\n  tok:\n    file: ./tok.txt\n",
        **{"tok.txt": "first"},
    )
    assert project.secretd("up", "-d").returncode == 0
    before = set((project.runtime / "mounts").iterdir())
    first = container(project, "app")
    same = project.secretd("up", "-d")  # nothing changed: compose leaves the container be
    assert same.returncode == 0, same.stderr
    assert container(project, "app") == first
    assert set((project.runtime / "mounts").iterdir()) == before
    (project.path / "tok.txt").write_text("second")
    again = project.secretd("up", "-d")
    assert again.returncode == 0, again.stderr
    assert project.docker("exec", container(project, "app"), "cat", "/run/secrets/tok") == "second"
    after = set((project.runtime / "mounts").iterdir())
    assert len(after) == 1 and not after & before


def test_compose_s_own_warnings_reach_the_user(project: Project) -> None:
    project.write(f"services:\n  web:\n    image: {IMAGE}\n    command: [echo, '${{SD_UNSET}}']\n")
    shown = project.secretd("config")
    assert shown.returncode == 0, shown.stderr
    assert 'The \\"SD_UNSET\\" variable is not set' in shown.stderr, shown.stderr
