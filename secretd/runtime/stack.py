"""``docker stack deploy`` of a compose model whose secrets are secretd's Swarm versions.

The model is Docker Compose's own (``docker compose config --format json``, read with the
stack's name as the project name, so every ``<project>_<key>`` compose wrote is the name
``docker stack deploy`` would have given). Each top-level secret a service uses becomes
``{name: <versioned name>, external: true}``: Swarm already holds it (runtime/swarm.py
pushed it), so the model handed to ``docker stack deploy`` names secrets and never holds a
value or a path to one. It goes on stdin (``-c -``), never to a file.

Compose's normalised output is not quite what the stack loader takes, so three things are
undone: the top-level ``name``, keys whose value is ``null`` (``entrypoint: null``; a
service's ``networks:`` keeps them, where ``null`` means "defaults"), and modes written as
octal strings (``"0400"``), which the stack loader wants as numbers. And ``version: "3.9"``
is put back: the Docker CLI 20.10 (Debian 12's) refuses a file without one, newer ones
ignore it.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import LaunchError, UsageError
from ..refs import parse_mode

log = logging.getLogger(__name__)

EXTENSION = "x-secretd"
STACK_VERSION = "3.9"  # the last of the version 3 formats, which every stack loader reads
_TIMEOUT = 120


def stack_model(model: Mapping[str, Any], versions: Mapping[str, str]) -> dict[str, Any]:
    """``model`` for ``docker stack deploy``, each secret in ``versions`` (compose key ->
    versioned name) external; secrets no service uses are left out."""
    services = {name: _service(body) for name, body in (model.get("services") or {}).items()}
    out: dict[str, Any] = {"version": STACK_VERSION}
    out.update(
        (key, _without_nulls(value))
        for key, value in model.items()
        if key not in ("name", "version", "services", "secrets")
    )
    out["services"] = services
    if versions:
        out["secrets"] = {key: {"name": name, "external": True} for key, name in versions.items()}
    for entry in (out.get("configs") or {}).values():
        if isinstance(entry, dict):
            entry.pop(EXTENSION, None)
    return out


def _service(body: Mapping[str, Any]) -> dict[str, Any]:
    service = {key: _without_nulls(value) for key, value in body.items() if value is not None}
    if "networks" in body:
        service["networks"] = body["networks"]
    for section in ("secrets", "configs"):
        uses = service.get(section) or []
        for item in uses:
            if isinstance(item, dict) and "mode" in item:
                item["mode"] = parse_mode(item["mode"], f"{section}: {item.get('source')}")
    return service


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def check(model_json: str, cwd: str) -> None:
    """Have the stack loader read the model (``docker stack config``) before anything is
    pushed, so a file it refuses changes nothing.

    An older Docker CLI (Debian 12's 20.10) has no ``docker stack config``; then the deploy
    itself is the first reading (versions pushed before a refusal stay, unused, until
    ``secretd swarm prune``).

    Raises:
        UsageError: the loader refused it (its own line: keys and names, no values).
        LaunchError: the docker CLI is not installed.
    """
    docker = _docker()
    helped = subprocess.run(
        [docker, "stack", "config", "--help"], capture_output=True, text=True, timeout=_TIMEOUT
    )
    if "docker stack config" not in helped.stdout:
        log.debug("this docker CLI has no 'docker stack config'; the model is not checked")
        return
    done = subprocess.run(
        [docker, "stack", "config", "--skip-interpolation", "-c", "-"],
        input=model_json, text=True, cwd=cwd, capture_output=True, timeout=_TIMEOUT,
    )  # fmt: skip
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        why = lines[-1] if lines else f"exit status {done.returncode}"
        raise UsageError(
            f"docker stack deploy cannot take this compose file: {why}",
            "fix the compose file (see docs/swarm.md for what a stack takes)",
        )


def deploy_argv(stack: str, options: Sequence[str] = ()) -> list[str]:
    """``docker stack deploy`` reading the model on stdin, with the user's own options."""
    return ["docker", "stack", "deploy", *options, "-c", "-", stack]


def deploy(model_json: str, argv: Sequence[str], cwd: str) -> int:
    """Run ``argv`` (``deploy_argv``) with the model on stdin; its exit status (its own
    output goes to ours).

    Raises:
        LaunchError: the docker CLI is not installed.
    """
    done = subprocess.run([_docker(), *argv[1:]], input=model_json, text=True, cwd=cwd)
    return done.returncode


def _docker() -> str:
    docker = shutil.which("docker")
    if docker is None:
        raise LaunchError(
            "the docker CLI is not installed ('docker stack deploy' runs the stack)",
            "install docker.io (Debian) or docker-ce-cli",
        )
    return docker
