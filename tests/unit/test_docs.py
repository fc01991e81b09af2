"""Every command has help and is documented (as sqlite-utils checks its docs): top-level
commands in the README, every command and subcommand in README.md or docs/*.md."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from secretd.cli import COMMANDS, cli
from secretd.plugins import BUILTIN

ROOT = Path(__file__).parents[2]
README = (ROOT / "README.md").read_text()
# line breaks inside a sentence do not hide a command: `secretd container\nls`
DOCS = " ".join([README, *(path.read_text() for path in sorted((ROOT / "docs").glob("*.md")))])
DOCS = re.sub(r"\s+", " ", DOCS)


def _subcommands(path: str, command: click.Command) -> list[tuple[str, click.Command]]:
    found = [(path, command)]
    if isinstance(command, click.Group):
        for name in sorted(command.commands):
            found += _subcommands(f"{path} {name}", command.commands[name])
    return found


def _commands() -> list[tuple[str, click.Command]]:
    ctx = click.Context(cli)
    found = []
    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        assert command is not None, name
        found += _subcommands(name, command)
    return found


@pytest.mark.parametrize(("path", "command"), _commands(), ids=lambda v: str(v))
def test_command_has_help_and_is_documented(path: str, command: click.Command) -> None:
    assert command.help and command.help.strip(), f"'secretd {path}' has no help text"
    top = path.split()[0]
    assert f"secretd {top}" in README, f"README does not mention 'secretd {top}'"
    assert re.search(rf"secretd {re.escape(path)}(?![\w-])", DOCS), (
        f"neither README.md nor docs/*.md mentions 'secretd {path}'"
    )


def test_the_walk_reaches_subcommands() -> None:
    paths = [path for path, _ in _commands()]
    assert {"secret create", "store rekey", "container prune", "image load"} <= set(paths)


def test_run_help_and_references_name_every_builtin_scheme() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "secretd", "run", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    text = re.sub(r"\s+", " ", result.stdout)
    references = (ROOT / "docs" / "references.md").read_text()
    for scheme in BUILTIN["secretd.providers"]:
        assert re.search(rf"\b{scheme}\b", text.split("--secret REF", 1)[1].split("-e,")[0]), (
            f"'secretd run --help' does not list the scheme {scheme!r} under --secret"
        )
        assert f"| `{scheme}` | `{scheme}:" in references, f"docs/references.md lacks {scheme}:"
    assert "docs/references.md" in text
