"""What ``secretd run`` does once its command line is read, without click: the flags'
values -> RunSpec -> exposure check -> ``client.run`` (the daemon, or the engine here).
Called by click's command (``run.py``) and by the fast path (``quickrun.py``) alike.

``prepare`` is the part a daemon shares (``cli/forwarded.py``): it reads the environment
it is given (``environ``: a bare ``-e KEY``, what a host command inherits, ``env:``
patterns, ``CI``, ``SECRETD_REDACT``) and hands its warnings to ``warn``, so that the
daemon parses a caller's command line with the caller's environment, never touching its
own ``os.environ`` or ``sys.stderr``. ``start`` gives it this process's own."""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

from .. import ci, client, runtime
from ..errors import LikeDockerRun, UsageError
from ..refs import check_unique_targets, parse_ref, parse_refresh, parse_refs, parse_template
from ..rotation import check_spec
from ..spec import RunSpec, TemplateRef
from .base import AppContext
from .boundary import echo_err
from .runenv import Variable, check_exposure, inherited_env, read_env

# Flags that land in the RunSpec field of the same name, as given.
SPEC_FLAGS = (
    "runtime", "user", "workdir", "name", "secrets_dir", "file_env", "entrypoint", "volumes",
    "publish", "network", "hostname", "restart", "read_only", "tty", "interactive", "detach",
    "remove", "on_change", "stop_signal", "stop_timeout",
)  # fmt: skip


def start(app: AppContext, args: tuple[str, ...], no_image: bool, opts: dict[str, Any]) -> NoReturn:
    """Run ``args`` as the flags (``opts``, by ``run_flags.FLAGS``' dest) say; exit with
    the command's status. ``no_image``: a bare ``--`` came before the command."""
    with LikeDockerRun():
        spec = prepare(app, args, no_image, opts, os.environ, echo_err)
        status = client.run(app.config, spec, opts["secrets"], opts["no_daemon"])
    sys.exit(status)


def prepare(
    app: AppContext,
    args: tuple[str, ...],
    no_image: bool,
    opts: dict[str, Any],
    environ: Mapping[str, str],
    warn: Callable[[str], None],
) -> RunSpec:
    """The RunSpec for the flags, read in the environment ``environ``, after the exposure
    check (its warnings to ``warn``, one line each). Without ``no_image``, whether the
    first word is an image or a program is asked of this process (its ``PATH``, its image
    engines): a daemon hands such a command line back instead (``cli/forwarded.py``).

    Raises:
        UsageError: a flag, a reference or an ``-e`` value is refused.
    """
    given = read_env(opts["env"], opts["env_file"], environ)
    spec, inherited = build_spec(app, args, no_image, given, opts, environ)
    strict = _strict(opts["strict"], app, environ)
    check_exposure(given, inherited, opts["allow_env"], strict, spec.image is None, warn)
    return spec


def _redact(flag: bool | None, app: AppContext, environ: Mapping[str, str]) -> bool | None:
    from ..redactstream import redact_default

    return flag if flag is not None else redact_default(app.config, environ)


def _strict(flag: bool, app: AppContext, environ: Mapping[str, str]) -> bool:
    return flag or app.config.strict or ci.detect(environ) is not None


def image_or_program(app: AppContext, args: tuple[str, ...]) -> tuple[str | None, tuple[str, ...]]:
    """``run app`` without ``--`` and without ``--runtime``: the image ``app`` if the
    automatic runtime has it here, else the program ``app`` on the host (the way the
    README's first line reads), else a usage error showing where ``--`` goes."""
    name = args[0]
    if ":" in name.rpartition("/")[2] or "@" in name or runtime.has_local_image(name, app.config):
        return name, args[1:]  # NAME:TAG and NAME@DIGEST are images, pulled or not
    if runtime.is_program(name):
        return None, args
    import shlex  # here: only this message needs it

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
    environ: Mapping[str, str],
) -> tuple[RunSpec, list[Variable]]:
    """The RunSpec for the flags, and what a host command inherits of secretd's
    environment ``environ`` (as with sudo -E; ``--clean-env`` keeps little of it)."""
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
    secrets = parse_refs(opts["secrets"], app.config.secrets, opts["secrets_dir"], environ)
    configs = tuple(parse_ref(text, app.config.configs, "config") for text in opts["configs"])
    templates = tuple(_anchored(parse_template(t, app.config.templates)) for t in opts["templates"])
    check_unique_targets((*secrets, *configs, *templates), opts["secrets_dir"])
    inherited = inherited_env(secrets, environ, opts["clean_env"]) if image is None else []
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
        redact=_redact(opts["redact"], app, environ),
        refresh=refresh,
        mount_type=opts["mount_type"] or app.config.mount_type,
        **same,
    )
    check_spec(spec)
    return spec, inherited


def _anchored(template: TemplateRef) -> TemplateRef:
    """A template's source as an absolute path: the engine may run in another directory."""
    return dataclasses.replace(template, source=os.path.abspath(template.source))
