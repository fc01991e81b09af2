"""What every command shares, without click: the global options' context, logging set-up
and the table of commands (each module imported only when its command runs)."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import Config, load_config
from ..errors import printable


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
