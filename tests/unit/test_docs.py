"""Every command has help, and the README names it (as sqlite-utils checks its docs)."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from secretd.cli import COMMANDS, cli

README = (Path(__file__).parents[2] / "README.md").read_text()


def _commands() -> list[tuple[str, click.Command]]:
    ctx = click.Context(cli)
    found = []
    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        assert command is not None, name
        found.append((name, command))
        if isinstance(command, click.Group):
            found += [(f"{name} {sub}", command.commands[sub]) for sub in command.commands]
    return found


@pytest.mark.parametrize(("path", "command"), _commands(), ids=lambda v: str(v))
def test_command_has_help_and_is_in_the_readme(path: str, command: click.Command) -> None:
    assert command.help and command.help.strip(), f"'secretd {path}' has no help text"
    top = path.split()[0]
    assert f"secretd {top}" in README, f"README does not mention 'secretd {top}'"
