"""``secretd info``: the effective configuration and where each value came from."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

import click

from .. import __version__
from ..backends import available_schemes
from ..config import Config
from ..errors import printable
from ..runtime import image_runtime
from . import AppContext

# Provider settings may hold credentials (a Vault token, an AppRole secret_id): show that
# they are set, never what they are.
SENSITIVE = re.compile(r"token|secret|password|passphrase|credential|jwt|key", re.IGNORECASE)
SETTINGS = (
    "state_dir", "runtime_dir", "host", "strict", "cache_ttl", "runtime", "log_level",
    "mount_type", "redact",
)  # fmt: skip


def _shown(key: str, value: Any) -> Any:
    return "<set>" if SENSITIVE.search(key) and not key.endswith(("_file", "_path")) else value


def _leaves(settings: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Nested tables as dotted leaves, so each one is judged (and hidden) on its own."""
    for key, value in sorted(settings.items()):
        if isinstance(value, Mapping):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def describe(config: Config) -> dict[str, Any]:
    """The configuration as data, each leaf as ``{"value", "origin"}``."""

    def leaf(dotted: str, value: Any) -> dict[str, Any]:
        return {"value": value, "origin": config.origins.get(dotted, "default")}

    return {
        "version": __version__,
        "config_files": [str(path) for path in config.files],
        "settings": {key: leaf(key, str(getattr(config, key))) for key in SETTINGS},
        "secrets": {
            name: leaf(f"secrets.{name}.source", binding.source) | {"target": binding.target}
            for name, binding in sorted(config.secrets.items())
        },
        "providers": {
            scheme: {
                key: leaf(f"providers.{scheme}.{key}", _shown(key, value))
                for key, value in _leaves(config.provider(scheme))
            }
            for scheme in available_schemes()
        },
    }


def render_text(data: dict[str, Any]) -> list[str]:
    lines = [
        f"secretd {data['version']}",
        "config files: " + (", ".join(data["config_files"]) or "(none)"),
        "settings:",
    ]
    lines += [f"  {k} = {v['value']}  ({v['origin']})" for k, v in data["settings"].items()]
    lines.append("secrets:" + ("" if data["secrets"] else " (none bound)"))
    for name, item in data["secrets"].items():
        target = f" -> {item['target']}" if item["target"] else ""
        lines.append(f"  {name} = {item['value']}{target}  ({item['origin']})")
    if "image_runtime" in data:
        chosen = data["image_runtime"]
        lines.append(f"image runtime: {chosen['name']}  ({chosen['why']})")
        lines.append("  (images in secretd's store, oci:, docker-archive: and dir: run with oci)")
    lines.append("providers: " + ", ".join(data["providers"]))
    for scheme, keys in data["providers"].items():
        lines += [f"  {scheme}.{k} = {v['value']}  ({v['origin']})" for k, v in keys.items()]
    return lines


@click.command()
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.pass_obj
def info(app: AppContext, fmt: str) -> None:
    """Show the effective configuration with each value's origin (never secret values)."""
    data = describe(app.config)
    data["image_runtime"] = dict(zip(("name", "why"), image_runtime(app.config), strict=True))
    lines = render_text(data)  # a cloned project's secretd.toml may hold terminal escapes
    click.echo(json.dumps(data, indent=2) if fmt == "json" else "\n".join(map(printable, lines)))
