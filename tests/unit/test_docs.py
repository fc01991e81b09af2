"""Every command has help and is documented (as sqlite-utils checks its docs): top-level
commands in the README, every command and subcommand in README.md or docs/*.md."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from secretd.cli import COMMANDS
from secretd.cli.app import cli
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


PACKAGE = ROOT / "secretd"


def _module_table() -> list[tuple[str, str]]:
    """The rows of architecture.md's module table: (first cell, whole row)."""
    rows = []
    for line in (ROOT / "docs" / "architecture.md").read_text().splitlines():
        cells = line.split(" | ")
        if line.startswith("| `") and len(cells) > 1:
            rows.append((cells[0], line))
    return rows


def _documented(module: str, rows: list[tuple[str, str]]) -> bool:
    """``a/b/c.py`` is documented by a row naming `a/b/c.py` in its first cell, or by the
    row of a package above it (`a/` or `a/b/`) naming `b/c.py` or `c.py`; a package's
    ``__init__.py`` by its package's row (`a/b/`)."""
    parts = module.split("/")
    for first, row in rows:
        if f"`{module}`" in first:
            return True
        for depth in range(1, len(parts)):
            package, rest = "/".join(parts[:depth]) + "/", "/".join(parts[depth:])
            if f"`{package}`" in first and (f"`{rest}`" in row or rest == "__init__.py"):
                return True
    return False


def test_architecture_lists_every_module() -> None:
    rows = _module_table()
    assert len(rows) > 20, "the module table of docs/architecture.md was not found"
    modules = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py"))
    missing = [m for m in modules if not _documented(m, rows)]
    packages = {first.split("`")[1] for first, _ in rows if first.split("`")[1].endswith("/")}
    assert not missing, "docs/architecture.md's module table (## Layout) lacks:\n" + "\n".join(
        f"  secretd/{m}: add a row '| `{m}` | its one job |'" + _or_package_row(m, packages)
        for m in missing
    )


def _or_package_row(module: str, packages: set[str]) -> str:
    package, _, name = module.rpartition("/")
    if f"{package}/" not in packages:
        return ""
    if name == "__init__.py":
        return f" (or let the `{package}/` row say it)"
    return f" or name `{name}` in the `{package}/` row"


def test_architecture_names_no_module_that_is_gone() -> None:
    """A module renamed or removed takes its name out of the table too."""
    stale = []
    for first, row in _module_table():
        names = re.findall(r"`([\w/.]+)`", first)
        stale += [n for n in names if n.endswith(".py") and not (PACKAGE / n).exists()]
        for package in (n for n in names if n.endswith("/")):
            inside = re.findall(r"`([\w/]+\.py)`", row)
            stale += [
                f"{package}{n}"
                for n in inside
                if not (PACKAGE / package / n).exists() and not (PACKAGE / n).exists()
            ]
    assert not stale, "docs/architecture.md's module table names modules that do not exist: " + (
        ", ".join(f"secretd/{n}" for n in stale) + " (rename or remove them there)"
    )


def test_the_module_table_check_reads_package_rows() -> None:
    rows = [("| `runtime/oci/`", "| `runtime/oci/` | runc: `state.py` (records) |")]
    assert _documented("runtime/oci/state.py", rows)
    assert _documented("runtime/oci/__init__.py", rows)
    assert not _documented("runtime/oci/images.py", rows)
    assert not _documented("runtime/sandbox.py", rows)
