"""A ``secretd stack deploy`` that the stack loader or ``docker stack deploy`` refuses
leaves Swarm's secrets and configs as they were, with each docker CLI on ``PATH``: Debian
12's own (20.10, which has no ``docker stack config``) and a newer one where installed."""

from __future__ import annotations

import hashlib
import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Runner
from tests.support.cli import refused
from tests.support.daemons import IMAGE
from tests.support.swarm import Swarm

pytestmark = [pytest.mark.docker, pytest.mark.root]

MANAGED = ["--label", "io.secretd.managed=true"]


def docker_clis() -> list[str]:
    """The directory of each distinct ``docker`` on ``PATH``, in ``PATH`` order: on a fresh
    Debian 12, only /usr/bin (CLI 20.10)."""
    found: dict[str, str] = {}
    for directory in os.get_exec_path():
        path = Path(directory, "docker")
        if path.is_file() and os.access(path, os.X_OK):
            found.setdefault(os.path.realpath(path), directory)
    return list(found.values())


@pytest.fixture(params=docker_clis())
def cli(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """This docker CLI first on ``PATH``, for secretd and the test's own look; its version."""
    monkeypatch.setenv("PATH", f"{request.param}{os.pathsep}{os.environ['PATH']}")
    shown = subprocess.run(
        ["docker", "version", "--format", "{{.Client.Version}}"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return shown.stdout.strip() or request.param


def versioned(name: str, value: str) -> str:
    return f"{name}_{hashlib.sha256(value.encode()).hexdigest()[:12]}"


Listing = set[tuple[str, str, frozenset[str]]]


def listed(swarm: Swarm) -> tuple[Listing, Listing]:
    """Every secret and config of the swarm: id, name, labels (in no order: CLI 20.10
    lists them in map order)."""
    found = []
    for kind in ("secret", "config"):
        shown = swarm.docker(kind, "ls", "--format", "{{.ID}} {{.Name}} {{.Labels}}")
        rows = (line.split(" ") + [""] for line in shown.splitlines())
        found.append(
            {(ident, name, frozenset(labels.split(","))) for ident, name, labels, *_ in rows}
        )
    return found[0], found[1]


@pytest.fixture
def service_name(swarm: Swarm) -> Iterator[str]:
    name = f"undo{secrets.token_hex(3)}"
    yield name
    swarm.docker("service", "rm", name, check=False)


SERVICE = """\
services:
  app:
    image: {image}
    secrets: [{key}, {same}]
"""
# the stack loader refuses it (20.10: no `content:` in a version 3.9 file; newer: none at all)
CONTENT = "configs:\n  conf:\n    content: hello\n"
# the loader takes it; docker stack deploy refuses it after secretd pushed its versions
MISSING_NETWORK = "networks:\n  gone:\n    external: true\n    name: nosuch{suffix}\n"
REFUSALS = {  # case: (what the service and the file add, the word refused, before any push)
    "content": ("    configs: [conf]\n" + CONTENT, "content", True),
    "missing-network": ("    networks: [gone]\n" + MISSING_NETWORK, "nosuch{suffix}", False),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_a_refused_stack_deploy_leaves_the_secrets_as_they_were(
    secretd: Runner, swarm: Swarm, tmp_path: Path, cli: str, case: str
) -> None:
    suffix = secrets.token_hex(3)
    key, same = f"key{suffix}", f"same{suffix}"
    old, new, kept = (f"{what}-{secrets.token_hex(8)}" for what in ("old", "new", "kept"))
    # an older version of one secret, and the very version another one needs now
    for name, value in ((key, old), (same, kept)):
        swarm.docker("secret", "create", *MANAGED, "--label", f"io.secretd.source={name}",
                     versioned(name, value), "-", input=value)  # fmt: skip
    (tmp_path / "key.txt").write_text(new)
    (tmp_path / "same.txt").write_text(kept)
    extra, named, up_front = REFUSALS[case]
    extra, named = extra.format(suffix=suffix), named.format(suffix=suffix)
    (tmp_path / "compose.yml").write_text(
        SERVICE.format(image=IMAGE, key=key, same=same) + extra
        + f"secrets:\n  {key}:\n    file: ./key.txt\n  {same}:\n    file: ./same.txt\n"
    )  # fmt: skip
    before = listed(swarm)

    done = secretd("stack", "deploy", "-c", "compose.yml", f"st{suffix}")

    refused(done, 2, "docker stack deploy", named, "fix the compose file")
    assert not [value for value in (old, new, kept) if value in done.stdout + done.stderr]
    assert listed(swarm) == before, f"CLI {cli}"
    assert {versioned(key, old), versioned(same, kept)} <= {name for _, name, _ in before[0]}
    pushed = f"create: secret {versioned(key, new)} (from {key})" in done.stdout.splitlines()
    undone = f"remove: secret {versioned(key, new)} (from {key})" in done.stdout.splitlines()
    assert (pushed, undone) == ((False, False) if up_front else (True, True)), done.stdout
    assert swarm.docker("service", "ls", "-q", "--filter", f"name=st{suffix}_") == ""


def test_the_undo_spares_a_version_a_service_uses_and_unmanaged_secrets(
    swarm: Swarm, service_name: str
) -> None:
    """What ``stack deploy`` removes after a failure: of the versions the run created, the
    managed ones no service uses (a service the deploy updated before it failed keeps its)."""
    from secretd.runtime.swarm import Swarm as Manager

    docker = swarm.docker
    suffix = secrets.token_hex(3)
    labels = [*MANAGED, "--label", f"io.secretd.source=undo{suffix}"]
    used, unused, foreign = (f"undo{suffix}_{c * 12}" for c in "abc")
    for name in (used, unused):
        docker("secret", "create", *labels, name, "-", input=name)
    docker("secret", "create", foreign, "-", input="not managed")
    docker("service", "create", "-d", "--name", service_name, "--secret", used,
           IMAGE, "sleep", "600")  # fmt: skip
    manager = Manager()
    try:
        steps = manager.plan_undo([used, unused, foreign, f"undo{suffix}_{'d' * 12}"])
        assert [step.line() for step in steps] == [f"remove: secret {unused} (from undo{suffix})"]
        for step in steps:
            manager.apply(step)
    finally:
        manager.close()
    left = set(docker("secret", "ls", "--format", "{{.Name}}").split())
    assert {used, foreign} <= left and unused not in left
    docker("service", "rm", service_name)
    docker("secret", "rm", used, foreign)


def test_a_deploy_the_engine_refuses_keeps_only_what_a_service_took(
    secretd: Runner, swarm: Swarm, tmp_path: Path, cli: str
) -> None:
    """Swarm refuses a service whose name is longer than a DNS label, after the CLI
    created the stack's other service (it goes first, by name, where seen): the version
    that one uses stays with it, the refused one's goes."""
    suffix = secrets.token_hex(3)
    good, bad, stack = f"good{suffix}", f"bad{suffix}", f"st{suffix}"
    values = {name: f"{name}-{secrets.token_hex(8)}" for name in (good, bad)}
    for name, value in values.items():
        (tmp_path / f"{name}.txt").write_text(value)
    (tmp_path / "compose.yml").write_text(
        f"services:\n  app:\n    image: {IMAGE}\n    command: [sleep, '600']\n"
        f"    secrets: [{good}]\n  {'s' * 60}:\n    image: {IMAGE}\n    secrets: [{bad}]\n"
        f"secrets:\n  {good}:\n    file: ./{good}.txt\n  {bad}:\n    file: ./{bad}.txt\n"
    )  # fmt: skip
    try:
        done = secretd("stack", "deploy", "-c", "compose.yml", "--resolve-image", "never", stack)
        refused(done, 125, "docker stack deploy failed", "Error response from daemon",
                f"see 'docker stack services {stack}'")  # fmt: skip
        made = swarm.docker("service", "ls", "--filter", f"name={stack}_", "--format", "{{.Name}}")
        left = {name for _, name, _ in listed(swarm)[0]}
        versions = {name: versioned(name, value) for name, value in values.items()}
        assert not [value for value in values.values() if value in done.stdout + done.stderr]
        assert versions[bad] not in left, done.stdout
        assert f"remove: secret {versions[bad]} (from {bad})" in done.stdout.splitlines()
        assert (versions[good] in left) == (f"{stack}_app" in made.split()), (made, done.stdout)
    finally:
        swarm.docker("stack", "rm", stack, check=False)
