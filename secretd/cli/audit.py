"""``secretd audit``: report secrets a Docker host, compose files or Dockerfiles expose;
``secretd audit log``: read the access log (which secret went where, never a value)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from . import AppContext

FAIL_LEVELS = ("none", "low", "medium", "high")


@click.group(invoke_without_command=True)
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
@click.pass_context
def audit(
    ctx: click.Context,
    docker_host: bool,
    compose_files: tuple[Path, ...],
    dockerfiles: tuple[Path, ...],
    output: str,
    fail_on: str,
) -> None:
    """Find secrets that 'docker inspect', 'docker history', compose files and Dockerfiles
    show in clear; print where, which variable, why and the fix, never a value.

    Exit status: 0 nothing at or above --fail-on, 1 findings, 2 usage errors, 125 Docker
    unreachable. 'secretd audit log' reads the access log instead.
    """
    if ctx.invoked_subcommand is not None:
        return
    app: AppContext = ctx.obj
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
        from ..runtime.engines.endpoint import docker_host as endpoint

        findings.extend(audit_docker(auditor, endpoint()))
    click.echo(FORMATS[output](findings), nl=False)
    if fail_on != "none" and any(f.level >= Level[fail_on.upper()] for f in findings):
        sys.exit(1)


def _key(app: AppContext) -> bytes:
    from ..audit import fingerprint_key

    return fingerprint_key(app.config.state_dir, os.environ)


@audit.command("log")
@click.option(
    "--since",
    metavar="WHEN",
    help="Only events since then: a duration back (30s, 10m, 2h, 7d) or a UTC time "
    "(2026-12-01T02:00:00).",
)
@click.option("--secret", "secret", metavar="NAME", help="Only events about this secret or file.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line, as stored.")
@click.pass_obj
def log(app: AppContext, since: str | None, secret: str | None, as_json: bool) -> None:
    """Show the access log: which secret (name, version) went to which run, for which uid,
    each rotation, and each open of a FUSE file (pid, command). Never a value."""
    import json

    from .. import accesslog

    start = _since(since) if since else None
    if not accesslog.files(app.config.state_dir):
        where = app.config.state_dir / accesslog.FILE
        click.echo(f"secretd: no access log at {where} yet (runs write it)", err=True)
    for event in accesslog.read(app.config.state_dir, start, secret):
        if as_json:
            click.echo(json.dumps(event, separators=(",", ":")))
        else:
            click.echo(_line(event))


def _since(text: str) -> float:
    """``--since``: a duration back from now, or an ISO 8601 UTC time.

    Raises:
        UsageError: neither.
    """
    import calendar
    import re
    import time

    from ..errors import UsageError

    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)([smhd])", text.strip())
    if match:
        return time.time() - float(match[1]) * units[match[2]]
    for layout in ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d"):
        try:
            return calendar.timegm(time.strptime(text.strip().rstrip("Z"), layout))
        except ValueError:
            continue
    raise UsageError(
        f"invalid --since {text!r}",
        "give a duration like 10m or 2h, or a UTC time like 2026-12-01T02:00",
    )


def _line(event: dict[str, object]) -> str:
    """``TIME EVENT key=value ...``: secrets as ``name@version``."""
    parts = [str(event.get("time", "")), str(event.get("event", ""))]
    for key, value in event.items():
        if key in ("time", "event") or value is None:
            continue
        if key == "secrets" and isinstance(value, list):
            value = ",".join(
                f"{item.get('name')}@{item.get('version')}" if isinstance(item, dict) else str(item)
                for item in value
            )
        parts.append(f"{key}={value}")
    return " ".join(parts)
