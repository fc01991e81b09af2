"""``secretd run``: flags -> RunSpec -> exposure check -> engine (or the daemon)."""

from __future__ import annotations

import dataclasses
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import click

from .. import ci, client, runtime
from ..errors import LikeDockerRun, UsageError
from ..refs import check_unique_targets, parse_ref, parse_refresh, parse_refs, parse_template
from ..rotation import check_spec
from ..spec import DEFAULT_SECRETS_DIR, RunSpec, TemplateRef
from . import AppContext
from .runenv import Variable, check_exposure, inherited_env, read_env

# Flags that land in the RunSpec field of the same name, as given.
SPEC_FLAGS = (
    "runtime", "user", "workdir", "name", "secrets_dir", "file_env", "entrypoint", "volumes",
    "publish", "network", "hostname", "restart", "read_only", "tty", "interactive", "detach",
    "remove", "on_change", "stop_signal", "stop_timeout",
)  # fmt: skip


class RunCommand(click.Command):
    """Tells ``run IMAGE CMD`` from ``run -- CMD``: after a bare ``--`` there is no image."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        rest = super().parse_args(ctx, list(args))
        positional = ctx.params.get("args") or ()
        ctx.meta["no_image"] = "--" in args and len(args) - 1 - args.index("--") == len(positional)
        return rest


def _redact(flag: bool | None, app: AppContext) -> bool | None:
    from ..redactstream import redact_default

    return flag if flag is not None else redact_default(app.config)


def _strict(flag: bool, app: AppContext) -> bool:
    return flag or app.config.strict or ci.detect() is not None


@click.command(
    cls=RunCommand,
    context_settings={"allow_interspersed_args": False, "ignore_unknown_options": False},
)
@click.option(
    "--secret",
    "secrets",
    multiple=True,
    metavar="REF",
    help="Secret to mount (repeatable). SCHEME is local, env, dotenv, file, vault, aws or ssm "
    "(docs/references.md).",
)
@click.option(
    "--config",
    "configs",
    multiple=True,
    metavar="REF",
    help="Config to mount (repeatable): --secret's grammar, Swarm's defaults (target /NAME, "
    "mode 0444; docs/configs.md).",
)
@click.option(
    "--template",
    "templates",
    multiple=True,
    metavar="source=PATH,target=/PATH",
    help="Render a Jinja2 template into a file (repeatable; docs/configs.md).",
)
@click.option("-e", "--env", "env", multiple=True, metavar="KEY[=VALUE]", help="Set a variable.")
@click.option("--env-file", multiple=True, type=click.Path(path_type=Path), help="Read variables.")
@click.option("-u", "--user", metavar="UID[:GID]", help="Run the command as this user.")
@click.option("-w", "--workdir", metavar="DIR", help="Working directory of the command.")
@click.option("--name", help="A name for the run (shown by 'secretd ps').")
@click.option("--secrets-dir", default=DEFAULT_SECRETS_DIR, show_default=True, help="Mount point.")
@click.option("--strict", is_flag=True, help="Refuse -e values that look like secrets.")
@click.option("--allow-env", multiple=True, metavar="NAME", help="Accept -e NAME as not secret.")
@click.option("--file-env", is_flag=True, help="Also set NAME_FILE=<path> for each secret.")
@click.option("--runtime", default="auto", show_default=True, help="sandbox, oci, docker, podman.")
@click.option("--entrypoint", help="Override the image's entrypoint.")
@click.option("-v", "--volume", "volumes", multiple=True, metavar="HOST:CTR[:ro]", help="Bind.")
@click.option("-p", "--publish", multiple=True, metavar="PORTS", help="Publish a port (engines).")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="Container label.")
@click.option("--network", help="none or host (oci); any network (engines).")
@click.option("--hostname", help="Container host name.")
@click.option("--restart", help="Restart policy (engines, with -d).")
@click.option("--read-only", is_flag=True, help="Mount the image's root filesystem read-only.")
@click.option("-t", "--tty", is_flag=True, help="Allocate a terminal.")
@click.option("-i", "--interactive", is_flag=True, help="Keep stdin open.")
@click.option("-d", "--detach", is_flag=True, help="Run in the background (images).")
@click.option("--rm", "remove", is_flag=True, help="Remove the container when it exits.")
@click.option(
    "--refresh",
    metavar="DURATION",
    help="Check every secret for a new version this often (1s or more; docs/rotation.md).",
)
@click.option(
    "--on-change",
    default="none",
    show_default=True,
    metavar="ACTION",
    help="When secrets changed: none, signal:NAME, restart or exec:CMD.",
)
@click.option("--stop-signal", default="SIGTERM", show_default=True, help="How restart stops.")
@click.option(
    "--stop-timeout", type=float, default=10.0, show_default=True, help="Restart's SIGKILL delay."
)
@click.option(
    "--mount-type",
    type=click.Choice(["tmpfs", "fuse"]),
    help="tmpfs (default) or fuse: files served from secretd's memory (docs/fuse.md).",
)
@click.option("--no-daemon", is_flag=True, help="Never use the secretd daemon; run in-process.")
@click.option(
    "--redact/--no-redact",
    default=None,
    help="Mask secrets' values in the command's output; default: SECRETD_REDACT, else on "
    "in CI or when output is not a terminal (docs/redaction.md).",
)
@click.option(
    "--no-sandbox",
    is_flag=True,
    help="Host commands: no namespace; secrets in a private directory on /dev/shm, "
    "$SECRETD_SECRETS_DIR (docs/ci.md).",
)
@click.option(
    "--clean-env",
    is_flag=True,
    help="Host commands inherit only PATH HOME USER LANG TZ TERM, CI* and the CI marker, plus -e.",
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED, metavar="[IMAGE] [--] CMD [ARG...]")
@click.pass_context
def run(ctx: click.Context, /, args: tuple[str, ...], **opts: Any) -> None:
    """Run a command with secrets mounted as in-memory files at /run/secrets.

    Without IMAGE (write `--` before CMD) the command runs on the host in a private mount
    namespace; with IMAGE it runs in a container. REF is NAME, NAME=SCHEME:LOCATOR or
    source=NAME,target=PATH,uid=UID,gid=GID,mode=0400.
    """
    app: AppContext = ctx.obj
    with LikeDockerRun():
        given = read_env(opts["env"], opts["env_file"])
        spec, inherited = build_spec(app, args, bool(ctx.meta.get("no_image")), given, opts)
        strict = _strict(opts["strict"], app)
        check_exposure(given, inherited, opts["allow_env"], strict, spec.image is None)
        status = client.run(app.config, spec, opts["secrets"], opts["no_daemon"])
    sys.exit(status)


def image_or_program(app: AppContext, args: tuple[str, ...]) -> tuple[str | None, tuple[str, ...]]:
    """``run app`` without ``--`` and without ``--runtime``: the image ``app`` if the
    automatic runtime has it here, else the program ``app`` on the host (the way the
    README's first line reads), else a usage error showing where ``--`` goes."""
    name = args[0]
    if ":" in name.rpartition("/")[2] or "@" in name or runtime.has_local_image(name, app.config):
        return name, args[1:]  # NAME:TAG and NAME@DIGEST are images, pulled or not
    if runtime.is_program(name):
        return None, args
    typed = sys.argv[1:]
    first = len(typed) - len(args)
    write = shlex.join(["secretd", *typed[:first], "--", *typed[first:]])
    raise UsageError(
        f"{name!r} is neither an image here nor a program on PATH",
        f"for a host command, write: {write}; for an image, pull it first",
    )


def build_spec(
    app: AppContext,
    args: tuple[str, ...],
    no_image: bool,
    given: list[Variable],
    opts: dict[str, Any],
) -> tuple[RunSpec, list[Variable]]:
    """The RunSpec for the flags, and what a host command inherits of secretd's
    environment (as with sudo -E; ``--clean-env`` keeps little of it)."""
    if not args:
        raise UsageError("no command given", "secretd run [OPTIONS] [IMAGE] -- CMD [ARG...]")
    if opts["no_sandbox"]:
        if opts["runtime"] not in ("auto", "host"):
            raise UsageError(f"--no-sandbox and --runtime {opts['runtime']} disagree")
        opts["runtime"] = "host"
        no_image = True  # the host's program, image or not
    image, command = (None, args) if no_image else (args[0], args[1:])
    if image is not None and opts["runtime"] == "auto" and app.config.runtime == "auto":
        image, command = image_or_program(app, args)
    labels = []
    for label in opts["labels"]:
        key, eq, value = label.partition("=")
        if not key:
            raise UsageError(f"invalid --label {label!r}", "use KEY=VALUE")
        labels.append((key, value))
    if not opts["secrets_dir"].startswith("/"):
        raise UsageError(f"--secrets-dir {opts['secrets_dir']!r} is not absolute")
    secrets = parse_refs(opts["secrets"], app.config.secrets, opts["secrets_dir"], os.environ)
    configs = tuple(parse_ref(text, app.config.configs, "config") for text in opts["configs"])
    templates = tuple(_anchored(parse_template(t, app.config.templates)) for t in opts["templates"])
    check_unique_targets((*secrets, *configs, *templates), opts["secrets_dir"])
    inherited = inherited_env(secrets, opts["clean_env"]) if image is None else []
    env = tuple((v.name, v.value) for v in (*inherited, *given))
    same = {key: opts[key] for key in SPEC_FLAGS}
    refresh = parse_refresh(opts["refresh"], "--refresh") if opts["refresh"] else None
    spec = RunSpec(
        command=tuple(command),
        secrets=secrets,
        configs=configs,
        templates=templates,
        env=env,
        image=image,
        labels=tuple(labels),
        redact=_redact(opts["redact"], app),
        refresh=refresh,
        mount_type=opts["mount_type"] or app.config.mount_type,
        **same,
    )
    check_spec(spec)
    return spec, inherited


def _anchored(template: TemplateRef) -> TemplateRef:
    """A template's source as an absolute path: the engine may run in another directory."""
    return dataclasses.replace(template, source=os.path.abspath(template.source))
