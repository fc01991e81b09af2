"""The ``secretd`` command: parses flags, calls the library, prints. No business logic.

Each command group lives in its own module of this package; this module holds the group,
the shared context and the one error boundary.
"""

from __future__ import annotations

import atexit
import importlib
import logging
import os
import sys
import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import click

from .. import __version__
from ..config import Config, load_config
from ..errors import SecretdError, printable

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
_PACKAGE = Path(__file__).resolve().parent.parent  # the secretd package, named in bug reports


@dataclass
class AppContext:
    """What the global options decided; the config is loaded on first use."""

    config_file: Path | None = None
    flags: dict[str, Any] = field(default_factory=dict)
    _config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.flags, self.config_file)
        return self._config


class _LineFormatter(logging.Formatter):
    """One line per event, ``secretd: level: message``; values never reach a logger."""

    def format(self, record: logging.LogRecord) -> str:
        return f"secretd: {record.levelname.lower()}: {printable(record.getMessage())}"


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LineFormatter())
    root = logging.getLogger("secretd")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


# Each command is imported only when it runs (or for --help): `secretd run` pays for
# nothing else. Add a command by naming its module and object here.
COMMANDS = {
    "info": "info:info",
    "run": "run:run",
    "secret": "secret:secret",
    "store": "secret:store",
    "config": "config:config",
    "daemon": "daemon:daemon",
    "ps": "containers:ps",
    "image": "image:image",
    "container": "containers:container",
    "logs": "containers:logs",
    "stop": "containers:stop",
    "rm": "containers:rm",
    "prune": "containers:prune",
    "template": "template:template",
    "audit": "audit:audit",
    "redact": "redact:redact",
    "compose": "compose:compose",
    "swarm": "swarm:swarm",
    "stack": "swarm:stack",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, _, attr = target.partition(":")
        command: click.Command = getattr(importlib.import_module(f"{__name__}.{module}"), attr)
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


def main() -> NoReturn:
    """Entry point: the single place that turns errors into one line and an exit code."""
    try:
        _main()
    except SystemExit as exc:
        leave(exc.code)
    leave(0)


def leave(code: str | int | None) -> NoReturn:
    """End the process as ``sys.exit(code)`` would, without the interpreter's teardown
    (~15 ms of freeing modules and objects nobody reads again): flush, run the ``atexit``
    functions (logging's flush among them), then ``os._exit``. With another thread still
    running, Python's own exit waits for it as usual."""
    if threading.active_count() > 1:
        sys.exit(code)
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code & 0xFF
    else:
        print(code, file=sys.stderr)
        status = 1
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:
        status = status or 120  # what Python's own exit makes of an unflushable stdout
    os._exit(status)


def _main() -> None:
    try:
        cli.main(standalone_mode=False, prog_name="secretd")
    except SecretdError as exc:
        _fail(exc.line(), exc.exit_code)
    except click.exceptions.Abort:
        _fail("aborted", 130)
    except click.ClickException as exc:
        hint = _usage_hint(exc)
        _fail(_click_message(exc) + (f": {hint}" if hint else ""), exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # noqa: BLE001 - the last resort: a bug, not a traceback
        _internal_error(exc)


def _fail(line: str, code: int) -> NoReturn:
    click.echo(f"secretd: {printable(line)}", err=True)
    sys.exit(code)


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


def _internal_error(exc: Exception) -> NoReturn:
    """A bug reached the boundary: name its type and where it happened, never its text
    (a library's message may quote a request, a token or a value). With ``--debug`` (or
    log level debug) the stack follows, still without any exception's text."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [frame for frame in frames if _in_secretd(frame.filename)] or frames
    where = f" in {_where(ours[-1])}" if ours else ""
    if logging.getLogger("secretd").isEnabledFor(logging.DEBUG):
        stack = "".join(traceback.format_list(frames)).rstrip("\n")
        click.echo(f"Traceback (exception texts left out):\n{stack}", err=True)
    if isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        _fail(f"cannot use {exc.filename}: {exc.strerror}", 125)  # a path, never a value
    _fail(f"internal error: {type(exc).__name__}{where}; please report it", 125)


def _in_secretd(filename: str) -> bool:
    return Path(filename).is_relative_to(_PACKAGE)


def _where(frame: traceback.FrameSummary) -> str:
    path = Path(frame.filename)
    shown = path.relative_to(_PACKAGE.parent) if _in_secretd(frame.filename) else path.name
    return f"{shown}:{frame.lineno} ({frame.name})"

