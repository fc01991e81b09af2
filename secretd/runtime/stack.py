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
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import LaunchError, UsageError, printable
from ..refs import parse_mode

log = logging.getLogger(__name__)

EXTENSION = "x-secretd"
STACK_VERSION = "3.9"  # the last of the version 3 formats, which every stack loader reads
_TIMEOUT = 120
_NO_ENGINE = "Cannot connect to the Docker daemon"
_ENGINE_FAILED = (_NO_ENGINE, "Error response from daemon", "error during connect")
# what would point the loader check's CLI elsewhere than at its engine that is not there
_ENDPOINT_VARIABLES = ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH",
                       "DOCKER_TLS")  # fmt: skip


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
    """Have the stack loader read the model before anything is pushed, so a file it
    refuses changes nothing: ``docker stack config``, or, on a CLI without it (Debian 12's
    20.10), ``docker stack deploy`` itself pointed at an engine that is not there: its
    loader reads the whole file before it connects, so "cannot connect" means it took it.

    Raises:
        UsageError: the loader refused it (its own line: keys and names, no values).
        LaunchError: the docker CLI is not installed.
    """
    docker = _docker()
    helped = subprocess.run(
        [docker, "stack", "config", "--help"], capture_output=True, text=True, timeout=_TIMEOUT
    )
    if "docker stack config" in helped.stdout:
        done = _read([docker, "stack", "config", "--skip-interpolation", "-c", "-"],
                     model_json, cwd)  # fmt: skip
    else:
        with tempfile.TemporaryDirectory(prefix="secretd-no-engine-") as nowhere:
            env = {k: v for k, v in os.environ.items() if k not in _ENDPOINT_VARIABLES}
            env["DOCKER_HOST"] = f"unix://{nowhere}/docker.sock"
            done = _read([docker, *deploy_argv("check")[1:]], model_json, cwd, env)
        if _NO_ENGINE in done.stderr:
            return
    if done.returncode != 0:
        raise _refusal(done)


def _read(
    argv: list[str], model_json: str, cwd: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, input=model_json, text=True, cwd=cwd, env=env, capture_output=True,
        timeout=_TIMEOUT,
    )  # fmt: skip


def _refusal(
    done: subprocess.CompletedProcess[str], stack: str = "STACK"
) -> UsageError | LaunchError:
    """The docker CLI's failure as one line, its last: the engine's refusal (125, as
    ``secretd swarm``'s own requests), else the file's (2: the loader's, or a network the
    file names that does not exist). The model names secrets, so the line holds no value."""
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    why = printable(lines[-1]) if lines else f"exit status {done.returncode}"
    if done.returncode < 0 or any(mark in why for mark in _ENGINE_FAILED):
        return LaunchError(
            f"docker stack deploy failed: {why}",
            f"see 'docker stack services {stack}' for what it made",
        )
    return UsageError(
        f"docker stack deploy cannot take this compose file: {why}",
        "fix the compose file (see docs/swarm.md for what a stack takes)",
    )


def deploy_argv(stack: str, options: Sequence[str] = ()) -> list[str]:
    """``docker stack deploy`` reading the model on stdin, with the user's own options."""
    return ["docker", "stack", "deploy", *options, "-c", "-", stack]


def deploy(model_json: str, argv: Sequence[str], cwd: str) -> None:
    """Run ``argv`` (``deploy_argv``) with the model on stdin; its stdout goes to ours,
    its stderr too once it succeeded (on failure, ``_refusal`` makes one line of it).

    Raises:
        UsageError: it refused the file.
        LaunchError: the engine refused a request; the docker CLI is not installed.
    """
    done = subprocess.run(
        [_docker(), *argv[1:]], input=model_json, text=True, cwd=cwd, stderr=subprocess.PIPE
    )
    if done.returncode != 0:
        raise _refusal(done, argv[-1])
    sys.stderr.write(done.stderr)


def _docker() -> str:
    docker = shutil.which("docker")
    if docker is None:
        raise LaunchError(
            "the docker CLI is not installed ('docker stack deploy' runs the stack)",
            "install docker.io (Debian) or docker-ce-cli",
        )
    return docker
