"""The click group of ``secretd``: global options, commands loaded on first use, and
click's errors turned into the boundary's one line (``boundary.py``)."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import click

from .. import __version__
from .base import COMMANDS, AppContext, setup_logging
from .boundary import fail

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, _, attr = target.partition(":")
        package = __name__.rpartition(".")[0]
        command: click.Command = getattr(importlib.import_module(f"{package}.{module}"), attr)
        return command


@click.group(cls=LazyGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "--version", prog_name="secretd", message="%(prog)s %(version)s")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Config file to use instead of ./secretd.toml.",
)
@click.option("--debug", is_flag=True, help="Log every step to stderr (never values).")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    help="Log level (default: warning, or SECRETD_LOG_LEVEL).",
)
@click.pass_context
def cli(ctx: click.Context, config_file: Path | None, debug: bool, log_level: str | None) -> None:
    """secretd: secrets as in-memory files at /run/secrets, for any process or container."""
    app = AppContext(config_file=config_file, flags={"log_level": "debug" if debug else log_level})
    ctx.obj = app
    setup_logging(app.flags["log_level"] or os.environ.get("SECRETD_LOG_LEVEL") or "warning")


def run_click() -> None:
    """The command line by click; its errors as one line (``SecretdError`` and the rest
    are the boundary's)."""
    try:
        cli.main(standalone_mode=False, prog_name="secretd")
    except click.exceptions.Abort:
        fail("aborted", 130)
    except click.ClickException as exc:
        hint = _usage_hint(exc)
        fail(_click_message(exc) + (f": {hint}" if hint else ""), exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)


def _click_message(exc: click.ClickException) -> str:
    """click's sentence without its full stop, so a hint can follow after a colon:
    ``No such option '--bogus' (did you mean '--user'?)``."""
    message = exc.format_message().strip()
    head, sep, question = message.partition(". Did you mean ")
    if sep:
        return f"{head} (did you mean {question})"
    return message.removesuffix(".")


def _usage_hint(exc: click.ClickException) -> str | None:
    ctx = getattr(exc, "ctx", None)
    if isinstance(exc, click.UsageError) and ctx is not None:
        return f"see '{ctx.command_path} --help'"
    return None
