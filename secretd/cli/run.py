"""``secretd run``'s click command: the options of ``run_flags.FLAGS``, then ``runcore``
(flags -> RunSpec -> exposure check -> engine or daemon). ``quickrun.py`` reads a plain
command line without click and calls the same ``runcore.start``; a daemon reads a
forwarded one with this command's parse (``read``) and gives ``runcore.prepare`` its
caller's environment (``forwarded.py``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from .base import AppContext
from .run_flags import ARGS_METAVAR, FLAG, FLAGS, FLOAT, MULTIPLE, PATH, SWITCH, Flag, no_image
from .runcore import start

F = TypeVar("F", bound=Callable[..., Any])


class RunCommand(click.Command):
    """Tells ``run IMAGE CMD`` from ``run -- CMD``: after a bare ``--`` there is no image."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        rest = super().parse_args(ctx, list(args))
        ctx.meta["no_image"] = no_image(args, len(ctx.params.get("args") or ()))
        return rest


def _option(flag: Flag) -> Callable[[F], F]:
    """The click option for one row of the table."""
    names = (f"{flag.names[0]}/{flag.off}",) if flag.kind == SWITCH else flag.names
    settings: dict[str, Any] = {"help": flag.help, "metavar": flag.metavar}
    if flag.kind == FLAG:
        settings["is_flag"] = True
    if flag.kind == MULTIPLE:
        settings["multiple"] = True
    if flag.default is not None or flag.kind == SWITCH:
        settings |= {"default": flag.default, "show_default": flag.show_default}
    if flag.convert == FLOAT:
        settings["type"] = float
    elif flag.convert == PATH:
        settings["type"] = click.Path(path_type=Path)
    elif flag.choices:
        settings["type"] = click.Choice(flag.choices)
    return click.option(*names, flag.dest, **settings)


def _options(function: F) -> F:
    for flag in reversed(FLAGS):
        function = _option(flag)(function)
    return function


@click.command(
    cls=RunCommand,
    context_settings={"allow_interspersed_args": False, "ignore_unknown_options": False},
)
@_options
@click.argument("args", nargs=-1, type=click.UNPROCESSED, metavar=ARGS_METAVAR)
@click.pass_context
def run(ctx: click.Context, /, args: tuple[str, ...], **opts: Any) -> None:
    """Run a command with secrets mounted as in-memory files at /run/secrets.

    Without IMAGE (write `--` before CMD) the command runs on the host in a private mount
    namespace; with IMAGE it runs in a container. REF is NAME, NAME=SCHEME:LOCATOR or
    source=NAME,target=PATH,uid=UID,gid=GID,mode=0400.
    """
    app: AppContext = ctx.obj
    start(app, args, bool(ctx.meta.get("no_image")), opts)


def read(argv: list[str]) -> tuple[tuple[str, ...], bool, dict[str, Any]]:
    """What this command gives its callback for ``secretd run ARGV``, without calling it:
    the words after the options, whether a bare ``--`` came right before them, and every
    option's value (by ``run_flags.FLAGS``' dest). Without ``--help``, which would print:
    here it is an unknown option.

    Raises:
        click.ClickException: click refuses the command line.
    """
    ctx = run.make_context("secretd run", list(argv), help_option_names=[])
    opts = dict(ctx.params)
    args = opts.pop("args")
    return args, bool(ctx.meta.get("no_image")), opts
