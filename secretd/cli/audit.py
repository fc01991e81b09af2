"""``secretd audit``: report secrets a Docker host, compose files or Dockerfiles expose."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from . import AppContext

FAIL_LEVELS = ("none", "low", "medium", "high")


@click.command()
@click.option(
    "--docker",
    "docker_host",
    is_flag=True,
    help="Every container and image of the Docker engine (DOCKER_HOST or the current context).",
)
@click.option(
    "--compose",
    "compose_files",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="A compose file: each service's environment: and build.args (repeatable).",
)
@click.option(
    "--dockerfile",
    "dockerfiles",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="A Dockerfile: its ENV, ARG and RUN lines (repeatable).",
)
@click.option(
    "--format",
    "output",
    type=click.Choice(["text", "json", "sarif"]),
    default="text",
    show_default=True,
    help="Report format, on stdout.",
)
@click.option(
    "--fail-on",
    type=click.Choice(FAIL_LEVELS),
    default="medium",
    show_default=True,
    help="Exit 1 when a finding at or above this level exists ('none': never).",
)
@click.pass_obj
def audit(
    app: AppContext,
    docker_host: bool,
    compose_files: tuple[Path, ...],
    dockerfiles: tuple[Path, ...],
    output: str,
    fail_on: str,
) -> None:
    """Find secrets that 'docker inspect', 'docker history', compose files and Dockerfiles
    show in clear; print where, which variable, why and the fix, never a value.

    Exit status: 0 nothing at or above --fail-on, 1 findings, 2 usage errors, 125 Docker
    unreachable.
    """
    from ..audit import Auditor, Level, audit_compose, audit_docker, audit_dockerfile
    from ..audit_formats import FORMATS
    from ..errors import UsageError

    if not (docker_host or compose_files or dockerfiles):
        raise UsageError("nothing to audit", "name --docker, --compose FILE or --dockerfile FILE")
    from ..plugins import require

    if compose_files:
        require("yaml", "secretd audit --compose", "docker")
    if docker_host:
        require("docker", "secretd audit --docker", "docker")
    auditor = Auditor(_key(app))
    findings = [
        *(f for path in dockerfiles for f in audit_dockerfile(auditor, path)),
        *(f for path in compose_files for f in audit_compose(auditor, path)),
    ]
    if docker_host:
        from ..runtime.engines.common import docker_host as endpoint

        findings.extend(audit_docker(auditor, endpoint()))
    click.echo(FORMATS[output](findings), nl=False)
    if fail_on != "none" and any(f.level >= Level[fail_on.upper()] for f in findings):
        sys.exit(1)


def _key(app: AppContext) -> bytes:
    from ..audit import fingerprint_key

    return fingerprint_key(app.config.state_dir, os.environ)
