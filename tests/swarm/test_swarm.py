"""``secretd swarm push|rotate|prune`` and ``secretd stack deploy`` against a real
single-node swarm: what a service's task reads, who owns it, which secrets exist."""

from __future__ import annotations

import hashlib
import json
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Runner
from tests.support.cli import refused
from tests.support.daemons import IMAGE
from tests.support.engines import Bind
from tests.support.swarm import Swarm
from tests.support.waiting import free_port
from tests.swarm.conftest import Remote

pytestmark = [pytest.mark.docker, pytest.mark.root]


def versioned(name: str, value: str) -> str:
    return f"{name}_{hashlib.sha256(value.encode()).hexdigest()[:12]}"


def ok(done: subprocess.CompletedProcess[str], *values: str) -> list[str]:
    """The command's stdout lines, once it succeeded without showing any value."""
    assert done.returncode == 0, done.stderr
    for value in values:
        assert value not in done.stdout + done.stderr
    return done.stdout.splitlines()


@pytest.fixture
def suffix() -> str:
    """Names of this test's own: the swarm lives as long as the session."""
    return secrets.token_hex(3)


@pytest.fixture
def service(swarm: Swarm, suffix: str) -> Iterator[str]:
    """The name of a service the test creates; removed afterwards."""
    name = f"svc{suffix}"
    yield name
    swarm.docker("service", "rm", name, check=False)


def names(swarm: Swarm, label: str) -> set[str]:
    listed = swarm.docker("secret", "ls", "--filter", f"label={label}", "--format", "{{.Name}}")
    return set(listed.split())


def service_secrets(swarm: Swarm, service: str) -> dict[str, tuple[str, str, str, int]]:
    """target -> (secret name, uid, gid, mode) in the service's spec."""
    template = "{{json .Spec.TaskTemplate.ContainerSpec.Secrets}}"
    spec = swarm.docker("service", "inspect", service, "--format", template)
    return {
        item["File"]["Name"]: (
            item["SecretName"], item["File"]["UID"], item["File"]["GID"], item["File"]["Mode"],
        )
        for item in json.loads(spec)
    }  # fmt: skip


def test_push_rotate_prune(
    secretd: Runner, swarm: Swarm, bound: Bind, tmp_path: Path, suffix: str, service: str
) -> None:
    docker = swarm.docker
    tok, near = f"tok{suffix}", f"tok{suffix}_a"  # versions of 'near' start with 'tok…_' too
    values = bound(tok, near)
    v1, n1 = versioned(tok, values[tok]), versioned(near, values[near])
    assert ok(secretd("swarm", "push", tok, near, "--dry-run"), *values.values()) == [
        f"would create: secret {v1} (from {tok})",
        f"would create: secret {n1} (from {near})",
    ]
    assert names(swarm, f"io.secretd.source={tok}") == set()

    assert ok(secretd("swarm", "push", tok, near), *values.values()) == [
        f"create: secret {v1} (from {tok})",
        f"create: secret {n1} (from {near})",
    ]
    labels = json.loads(docker("secret", "inspect", v1, "--format", "{{json .Spec.Labels}}"))
    assert labels == {"io.secretd.source": tok, "io.secretd.managed": "true"}
    before = docker("secret", "inspect", v1, "--format", "{{.ID}} {{.Version.Index}}")
    assert ok(secretd("swarm", "push", tok)) == [f"up to date: secret {v1} (from {tok})"]
    assert docker("secret", "inspect", v1, "--format", "{{.ID}} {{.Version.Index}}") == before
    assert names(swarm, f"io.secretd.source={tok}") == {v1}

    # a secret secretd does not manage, named as if it were a version of tok
    fake = f"{tok}_{'0' * 12}"
    docker("secret", "create", fake, "-", input="not-managed")
    docker(
        "service", "create", "-d", "--name", service, "--stop-signal", "KILL",
        "--secret", f"source={v1},target=tok.key,uid=1000,gid=1001,mode=0440",
        "--secret", f"source={n1},target=near", "--secret", f"source={fake},target=fake",
        IMAGE, "sleep", "600",
    )  # fmt: skip
    first = swarm.task_container(service)
    assert docker("exec", first, "cat", "/run/secrets/tok.key") == values[tok]

    new = {name: f"new-{name}-{secrets.token_hex(8)}" for name in (tok, near)}
    for name, value in new.items():
        (tmp_path / f"{name}.value").write_text(value)
    v2 = versioned(tok, new[tok])
    spec_before = docker("service", "inspect", service, "--format", "{{.Version.Index}}")
    where = "tok.key (uid 1000, gid 1001, mode 0440)"
    assert ok(secretd("swarm", "rotate", service, "--secret", tok, "--dry-run"), *new.values()) == [
        f"would create: secret {v2} (from {tok})",
        f"would update: service {service}: {v1} -> {v2} at {where}",
    ]
    assert docker("service", "inspect", service, "--format", "{{.Version.Index}}") == spec_before
    assert names(swarm, f"io.secretd.source={tok}") == {v1}

    assert ok(secretd("swarm", "rotate", service, "--secret", tok), *new.values()) == [
        f"create: secret {v2} (from {tok})",
        f"update: service {service}: {v1} -> {v2} at {where}",
    ]
    assert service_secrets(swarm, service) == {
        "tok.key": (v2, "1000", "1001", 0o440),
        "near": (n1, "0", "0", 0o444),  # another name: not rotated, whatever its prefix
        "fake": (fake, "0", "0", 0o444),  # not managed: untouched
    }
    task = swarm.task_container(service, not_in=frozenset({first}))
    swarm.wait(
        "the new value",
        lambda: docker("exec", task, "cat", "/run/secrets/tok.key", check=False) == new[tok],
    )
    shown = docker("exec", task, "stat", "-c", "%a %u %g %n", "/run/secrets/tok.key")
    assert shown.split() == ["440", "1000", "1001", "/run/secrets/tok.key"]
    assert ok(secretd("swarm", "rotate", service, "--secret", tok)) == [
        f"up to date: service {service}"
    ]

    planned = ok(secretd("swarm", "prune", "--dry-run"))
    assert f"would remove: secret {v1} (from {tok})" in planned
    assert not [line for line in planned if v2 in line or n1 in line or fake in line]
    assert names(swarm, f"io.secretd.source={tok}") == {v1, v2}
    assert f"remove: secret {v1} (from {tok})" in ok(secretd("swarm", "prune"))
    assert names(swarm, f"io.secretd.source={tok}") == {v2}
    assert {n1, fake} <= set(docker("secret", "ls", "--format", "{{.Name}}").split())
    docker("service", "rm", service)
    planned = ok(secretd("swarm", "prune", "--keep", "0", "--dry-run"))
    assert {
        f"would remove: secret {v2} (from {tok})",
        f"would remove: secret {n1} (from {near})",
    } <= set(planned)
    assert not [line for line in planned if fake in line]
    kept = ok(secretd("swarm", "prune", "--dry-run"))  # --keep 1: each name's newest stays
    assert not [line for line in kept if tok in line]


def test_bad_input_is_one_line(
    secretd: Runner, swarm: Swarm, bound: Bind, suffix: str, service: str
) -> None:
    docker = swarm.docker
    tok = f"tok{suffix}"
    values = bound(tok)
    refused(secretd("swarm", "push", f"missing{suffix}"), 125, "not found")
    refused(secretd("swarm", "rotate", f"nosuch{suffix}"), 2, f"no swarm service 'nosuch{suffix}'")
    docker("service", "create", "-d", "--name", service, IMAGE, "sleep", "600")
    refused(secretd("swarm", "rotate", service), 2, "does not use any secret secretd manages")
    refused(secretd("swarm", "rotate", service, "--secret", tok), 2, f"does not use secret '{tok}'")
    refused(secretd("swarm", "push", "x" * 52), 2, "too long")

    # the name secretd would give, taken by a secret it does not manage: left alone
    taken = versioned(tok, values[tok])
    docker("secret", "create", taken, "-", input="someone else's")
    refused(secretd("swarm", "push", tok), 125, "secretd does not manage")
    assert docker("secret", "inspect", taken, "--format", "{{json .Spec.Labels}}").strip() in (
        "{}",
        "null",
    )
    for done in (
        secretd("swarm", "push", tok, "--dry-run"),
        secretd("swarm", "prune", "--keep", "0"),
    ):
        assert taken not in done.stdout and values[tok] not in done.stdout + done.stderr
    docker("secret", "rm", taken)


def test_not_a_swarm_manager(
    secretd: Runner, bound: Bind, remote: Remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An engine that is no manager: refused before any value is read."""
    monkeypatch.setenv("DOCKER_HOST", remote.docker.host)
    bound("tok")
    for args in (("push", "tok"), ("rotate", "web"), ("prune",)):
        refused(secretd("swarm", *args), 125, "is not a swarm manager")


NO_REGISTRY = ("--resolve-image", "never")  # none is reachable, and busybox:local is ours
COMPOSE = """\
services:
  app:
    image: {image}
    command: ["sleep", "600"]
    stop_signal: SIGKILL
    secrets:
      - source: key
        target: app.key
        uid: "1000"
        gid: "1000"
        mode: 0400
      - source: shared
      - source: token
        target: /etc/token
secrets:
  key:
    file: ./key.txt
  shared:
    external: true
    name: {shared}
  token:
    environment: TOKEN
"""


def test_stack_deploy(
    secretd: Runner, swarm: Swarm, bound: Bind, tmp_path: Path, suffix: str
) -> None:
    docker = swarm.docker
    shared = f"shared{suffix}"
    values = {**bound(shared), "key": f"key-{secrets.token_hex(8)}", "token": f"tk-{suffix}"}
    (tmp_path / "key.txt").write_text(values["key"])
    (tmp_path / ".env").write_text(f"TOKEN={values['token']}\n")
    (tmp_path / "compose.yml").write_text(COMPOSE.format(image=IMAGE, shared=shared))
    stack = f"st{suffix}"
    wanted = {
        "key": versioned("key", values["key"]),
        "shared": versioned(shared, values[shared]),
        "token": versioned("token", values["token"]),
    }
    try:
        planned = ok(
            secretd("stack", "deploy", "-c", "compose.yml", *NO_REGISTRY, stack, "--dry-run"),
            *values.values(),
        )
        assert f"would create: secret {wanted['shared']} (from {shared})" in planned
        assert planned[-1] == f"would run: docker stack deploy {' '.join(NO_REGISTRY)} -c - {stack}"
        assert not set(wanted.values()) & set(
            docker("secret", "ls", "--format", "{{.Name}}").split()
        )
        assert docker("service", "ls", "-q", "--filter", f"name={stack}_app") == ""

        ok(secretd("stack", "deploy", "-c", "compose.yml", *NO_REGISTRY, stack), *values.values())
        task = swarm.task_container(f"{stack}_app")
        shown = docker("exec", task, "sh", "-c", "stat -c '%a %u %g %n' /run/secrets/* /etc/token")
        assert shown.splitlines() == [
            "400 1000 1000 /run/secrets/app.key",
            "444 0 0 /run/secrets/shared",
            "444 0 0 /etc/token",
        ]
        read = docker(
            "exec", task, "cat", "/run/secrets/app.key", "/run/secrets/shared", "/etc/token"
        )
        assert read == values["key"] + values[shared] + values["token"]
        used = {name for name, *_ in service_secrets(swarm, f"{stack}_app").values()}
        assert used == set(wanted.values())
        inspected = docker("service", "inspect", f"{stack}_app")
        assert not [value for value in values.values() if value in inspected]

        again = ok(secretd("stack", "deploy", "-c", "compose.yml", *NO_REGISTRY, stack))
        assert f"up to date: secret {wanted['key']} (from key)" in again
        assert not [line for line in again if line.startswith("create")]
        assert used == {name for name, *_ in service_secrets(swarm, f"{stack}_app").values()}

        (tmp_path / "key.txt").write_text(f"key-{secrets.token_hex(8)}")
        new_key = versioned("key", (tmp_path / "key.txt").read_text())
        assert f"create: secret {new_key} (from key)" in ok(
            secretd("stack", "deploy", "-c", "compose.yml", *NO_REGISTRY, stack)
        )
        moved = service_secrets(swarm, f"{stack}_app")
        assert moved["app.key"] == (new_key, "1000", "1000", 0o400)
        assert moved["/etc/token"][0] == wanted["token"]
    finally:
        docker("stack", "rm", stack, check=False)


def test_plain_tcp_is_refused(
    secretd: Runner, bound: Bind, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Values would cross the network in clear text: refused before anything is read."""
    values = bound("tok")
    monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{free_port()}")
    for args in (("push", "tok"), ("prune",)):
        done = secretd("swarm", *args)
        refused(done, 2, "without TLS")
        assert values["tok"] not in done.stdout + done.stderr


def test_push_from_the_local_store(secretd: Runner, swarm: Swarm, suffix: str) -> None:
    """A name secretd.toml does not bind is read from the local store, as run reads it."""
    name, value = f"stored{suffix}", f"v-{secrets.token_hex(8)}"
    assert secretd("secret", "create", name, "-", input=value).returncode == 0
    assert ok(secretd("swarm", "push", name), value) == [
        f"create: secret {versioned(name, value)} (from {name})"
    ]
    assert names(swarm, f"io.secretd.source={name}") == {versioned(name, value)}


def test_prune_keeps_a_version_a_service_took_up_meanwhile(
    swarm: Swarm, suffix: str, service: str
) -> None:
    """Between the plan and the removal a service started using the version: Swarm
    refuses, and prune says it kept it instead of failing the rest of the plan."""
    from secretd.runtime.swarm import Swarm as Manager

    docker = swarm.docker
    source = f"race{suffix}"
    taken = f"{source}_{'a' * 12}"
    labels = ["--label", f"io.secretd.source={source}", "--label", "io.secretd.managed=true"]
    docker("secret", "create", *labels, taken, "-", input="value")
    manager = Manager()
    try:
        (step,) = [s for s in manager.plan_prune(keep=0) if taken in s.subject]
        docker("service", "create", "-d", "--name", service, "--secret", taken, IMAGE, "sleep", "9")
        done = manager.apply(step)
    finally:
        manager.close()
    assert done.line() == f"kept: secret {taken} (from {source}): a service uses it now"
    assert taken in docker("secret", "ls", "--format", "{{.Name}}").split()
