"""Configuration: files and ``SECRETD_*`` variables merged into one frozen ``Config``.

Precedence, highest first: flags > ``SECRETD_*`` > ``./secretd.toml`` (or ``--config``)
> ``$XDG_CONFIG_HOME/secretd/config.toml`` > ``/etc/secretd/config.toml`` > defaults.
Every leaf value remembers where it came from, so ``secretd info`` can say why.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UsageError
from .refs import (
    Binding,
    check_name,
    check_target,
    check_variable,
    parse_id,
    parse_max_reads,
    parse_mode,
    parse_refresh,
)

SYSTEM_CONFIG = Path("/etc/secretd/config.toml")
PROJECT_CONFIG = "secretd.toml"
ENV_SETTINGS = {
    "SECRETD_STATE_DIR": "state_dir",
    "SECRETD_RUNTIME_DIR": "runtime_dir",
    "SECRETD_HOST": "host",
    "SECRETD_STRICT": "strict",
    "SECRETD_CACHE_TTL": "cache_ttl",
    "SECRETD_RUNTIME": "runtime",
    "SECRETD_LOG_LEVEL": "log_level",
    "SECRETD_MOUNT_TYPE": "mount_type",
    "SECRETD_REDACT": "redact",
}
TOP_LEVEL = {"state_dir", "runtime_dir", "host", "strict", "cache_ttl", "runtime", "log_level"}
TOP_LEVEL |= {"mount_type", "redact"}
TABLES = {"secrets", "configs", "templates", "providers", "daemon", "policy", "access_log"}
PATH_SCHEMES = ("dotenv:", "file:")
BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class Setting:
    """What one key of a config file must hold: TOML types, and optionally a range."""

    types: tuple[type, ...]
    expected: str  # "a whole number of at least 1": the error's wording
    valid: Callable[[Any], bool] = lambda value: True


_PATH = Setting((str,), "a path (a string)")
_TEXT = Setting((str,), "a string")
_TABLE = Setting((dict,), "a table")
_ID = Setting((int, str), "a numeric id")
_MODE = Setting((int, str), "an octal mode like 0400")
_SECONDS = Setting((int, float), "a number of seconds above 0", lambda value: value > 0)
_COUNT = Setting((int,), "a whole number of at least 1", lambda value: value >= 1)

# Every typed key of a config file, by dotted path ("*" matches any one key). A file that
# gives another type is refused with one line naming the file, the key and the type wanted;
# a key added to a table is validated by adding its row here.
SETTINGS: dict[str, Setting] = {
    "state_dir": _PATH,
    "runtime_dir": _PATH,
    "host": _TEXT,
    "strict": Setting((bool, str), "true or false"),
    "redact": Setting((bool, str), 'true, false or "auto"', lambda v: redact_setting(v) != ""),
    "cache_ttl": Setting((int, float, str), "a number of seconds"),
    "runtime": _TEXT,
    "log_level": _TEXT,
    **dict.fromkeys(("secrets", "secrets.*", "providers", "providers.*"), _TABLE),
    **dict.fromkeys(("daemon", "policy"), _TABLE),
    "secrets.*.source": Setting((str,), 'a source like "vault:secret/app#key"'),
    "secrets.*.target": _PATH,
    "secrets.*.uid": _ID,
    "secrets.*.gid": _ID,
    "secrets.*.mode": _MODE,
    "secrets.*.refresh": Setting((str, int, float), 'a duration like "30s" or "5m"'),
    "secrets.*.file_env": Setting((str,), 'a variable name like "POSTGRES_PASSWORD_FILE"'),
    "secrets.*.redact": Setting((bool,), "true or false"),
    "secrets.*.max_reads": _COUNT,
    "mount_type": Setting((str,), '"tmpfs" or "fuse"', lambda value: value in ("tmpfs", "fuse")),
    "access_log": _TABLE,
    "access_log.enabled": Setting((bool,), "true or false"),
    "access_log.max_bytes": _COUNT,
    "access_log.keep": Setting((int,), "a whole number of files", lambda value: value >= 0),
    **dict.fromkeys(("configs", "configs.*", "templates", "templates.*"), _TABLE),
    "configs.*.source": Setting((str,), 'a source like "file:app.conf" or "vault:kv/app#conf"'),
    "configs.*.target": _PATH,
    "configs.*.uid": _ID,
    "configs.*.gid": _ID,
    "configs.*.mode": _MODE,
    "templates.*.source": Setting((str,), 'a template file like "app.yml.tmpl"'),
    "templates.*.target": _PATH,
    "templates.*.uid": _ID,
    "templates.*.gid": _ID,
    "templates.*.mode": _MODE,
    "templates.*.delimiters": Setting(
        (list,),
        'two strings, like ["[[", "]]"]',
        lambda value: len(value) == 2 and all(isinstance(v, str) and v for v in value),
    ),
    "providers.local.path": _PATH,
    "providers.local.key_file": _PATH,
    "providers.local.keep_versions": _COUNT,
    "providers.oci.runtime_binary": _PATH,
    "daemon.socket": _PATH,
    "daemon.socket_mode": _MODE,
    "daemon.socket_group": _TEXT,
    "daemon.log_level": _TEXT,
    "daemon.engines": Setting(
        (list,), "an array of names", lambda value: all(isinstance(v, str) for v in value)
    ),
    "daemon.read_timeout": _SECONDS,
    "daemon.max_connections": _COUNT,
    "daemon.max_connections_per_user": _COUNT,
    "daemon.max_secrets_per_run": _COUNT,
    "daemon.max_bytes_per_run": _COUNT,
    "daemon.max_bytes_per_user": _COUNT,
}
_TOML_TYPES = {str: "a string", bool: "a boolean", int: "an integer", float: "a number"}
_TOML_TYPES |= {list: "an array", dict: "a table"}


def _is_root() -> bool:
    return os.geteuid() == 0


def default_state_dir(environ: Mapping[str, str]) -> Path:
    if _is_root():
        return Path("/var/lib/secretd")
    base = environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "secretd"


def default_runtime_dir(environ: Mapping[str, str]) -> Path:
    if _is_root():
        return Path("/run/secretd")
    base = environ.get("XDG_RUNTIME_DIR")
    return Path(base) / "secretd" if base else Path(f"/tmp/secretd-{os.getuid()}")


def user_config_path(environ: Mapping[str, str]) -> Path:
    base = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "secretd" / "config.toml"


def redact_setting(value: Any) -> str:
    """``redact`` (``SECRETD_REDACT``) as ``"true"``, ``"false"`` or ``"auto"``; ``""`` for
    anything else."""
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return "true"
    if text in ("false", "0", "no", "off"):
        return "false"
    return "auto" if text == "auto" else ""


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Config:
    """The effective configuration. ``origins`` maps dotted keys to where each came from."""

    state_dir: Path
    runtime_dir: Path
    host: str | None = None
    strict: bool = False
    cache_ttl: float = 0.0
    runtime: str = "auto"
    log_level: str = "warning"
    mount_type: str = "tmpfs"
    redact: str = "auto"  # run's and logs' --redact default: true, false or auto (redactstream)
    secrets: Mapping[str, Binding] = field(default_factory=dict)
    configs: Mapping[str, Binding] = field(default_factory=dict)
    templates: Mapping[str, Binding] = field(default_factory=dict)
    providers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    daemon: Mapping[str, Any] = field(default_factory=dict)
    policy: Mapping[str, Any] = field(default_factory=dict)
    access_log: Mapping[str, Any] = field(default_factory=dict)
    origins: Mapping[str, str] = field(default_factory=dict)
    files: tuple[Path, ...] = ()

    def provider(self, scheme: str) -> Mapping[str, Any]:
        return self.providers.get(scheme, {})


def _is_file(path: Path) -> bool:
    """Whether a config file is there; a directory on its way that the user cannot enter
    is an error naming the file, since it may hold settings that matter."""
    try:
        return path.is_file()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None


def _read_toml(path: Path) -> dict[str, Any]:
    import tomllib  # here: most runs read no config file and skip its ~1 ms import

    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"cannot parse {path}: {exc}", "fix the TOML syntax") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    unknown = set(data) - TOP_LEVEL - TABLES
    if unknown:
        raise UsageError(
            f"unknown setting {sorted(unknown)[0]!r} in {path}",
            f"known settings: {', '.join(sorted(TOP_LEVEL | TABLES))}",
        )
    for pattern, setting in SETTINGS.items():
        for keys, value in _find(data, pattern.split(".")):
            _check_setting(keys, value, setting, path)
    return _anchor_paths(data, path.parent)


def _find(
    data: Any, pattern: list[str], keys: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], Any]]:
    """``(keys, value)`` for every place in ``data`` that the dotted ``pattern`` names."""
    if not pattern:
        yield keys, data
    elif isinstance(data, dict):
        head, rest = pattern[0], pattern[1:]
        for key in data if head == "*" else [head] if head in data else []:
            yield from _find(data[key], rest, (*keys, key))


def _toml_key(key: str) -> str:
    """A key as TOML writes it: bare when it can be, else quoted with escapes."""
    return key if BARE_KEY.fullmatch(key) else json.dumps(key)


def _check_setting(keys: tuple[str, ...], value: Any, setting: Setting, path: Path) -> None:
    """Refuse a value of the wrong type (named by its type only: it may be a credential)."""
    right_type = isinstance(value, setting.types) and (
        bool in setting.types or not isinstance(value, bool)
    )
    if right_type and setting.valid(value):
        return
    table, key = ".".join(map(_toml_key, keys[:-1])), _toml_key(keys[-1])
    where = f"[{table}] {key}" if table else key
    shown = repr(value) if right_type else _TOML_TYPES.get(type(value), "a date or time")
    raise UsageError(f"{where} in {path} is {shown}", f"give {setting.expected}")


def _anchor(value: Any, base: Path) -> Any:
    """Relative ``dotenv:``/``file:`` sources mean relative to the file that names them."""
    if isinstance(value, str):
        for scheme in PATH_SCHEMES:
            if value.startswith(scheme) and not value[len(scheme) :].startswith("/"):
                return scheme + str(base / value[len(scheme) :])
    return value


def _anchor_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    for table in ("secrets", "configs"):
        for entry in data.get(table, {}).values():
            if isinstance(entry, dict) and "source" in entry:
                entry["source"] = _anchor(entry["source"], base)
    for entry in data.get("templates", {}).values():  # a template's source is a plain path
        if isinstance(entry, dict) and isinstance(entry.get("source"), str):
            entry["source"] = str(base / entry["source"])
    local = data.get("providers", {}).get("local", {})
    for key in ("path", "key_file"):
        if isinstance(local, dict) and isinstance(local.get(key), str):
            local[key] = str(base / local[key])
    return data


def _merge(
    into: dict[str, Any],
    layer: Mapping[str, Any],
    origin: str,
    origins: dict[str, str],
    prefix: str = "",
) -> None:
    for key, value in layer.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value, origin, origins, dotted + ".")
        else:
            into[key] = value
            _record(value, dotted, origin, origins)


def _record(value: Any, dotted: str, origin: str, origins: dict[str, str]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _record(inner, f"{dotted}.{key}", origin, origins)
    else:
        origins[dotted] = origin


def _table_origin(origins: Mapping[str, str], dotted: str) -> str:
    """The file a table came from: its ``source``'s, else any of its keys' (or its own)."""
    if f"{dotted}.source" in origins or dotted in origins:
        return origins.get(f"{dotted}.source") or origins[dotted]
    return next((o for key, o in origins.items() if key.startswith(dotted + ".")), "config")


def _binding(name: str, entry: Any, origin: str, table: str = "secrets") -> Binding:
    check_name(name)
    where = f"[{table}.{name}] in {origin}"
    if not isinstance(entry, dict) or not isinstance(entry.get("source"), str):
        hint = 'add source = "PATH"' if table == "templates" else 'add source = "SCHEME:LOCATOR"'
        raise UsageError(f"{where} has no source", hint)
    delimiters = entry.get("delimiters")
    return Binding(
        delimiters=(str(delimiters[0]), str(delimiters[1])) if delimiters else None,
        source=entry["source"],
        target=check_target(str(entry["target"]), where) if "target" in entry else None,
        uid=parse_id(entry["uid"], "uid", where) if "uid" in entry else None,
        gid=parse_id(entry["gid"], "gid", where) if "gid" in entry else None,
        mode=parse_mode(entry["mode"], where) if "mode" in entry else None,
        refresh=parse_refresh(entry["refresh"], where) if "refresh" in entry else None,
        file_env=check_variable(entry["file_env"], where) if "file_env" in entry else None,
        redact=entry.get("redact"),
        max_reads=parse_max_reads(entry["max_reads"], where) if "max_reads" in entry else None,
    )


def load_config(
    flags: Mapping[str, Any] | None = None,
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Config:
    """Merge every layer into a Config.

    Args:
        flags: settings given on the command line (``None`` values are ignored).
        config_file: replaces ``./secretd.toml`` (``--config``); must exist.
        environ: the environment to read ``SECRETD_*`` and XDG variables from.
        cwd: where to look for ``secretd.toml``.

    Raises:
        UsageError: a file cannot be parsed or holds an unknown or invalid setting.
    """
    environ = os.environ if environ is None else environ
    cwd = cwd or Path.cwd()
    merged: dict[str, Any] = {}
    origins: dict[str, str] = {}
    _merge(
        merged,
        {
            "state_dir": str(default_state_dir(environ)),
            "runtime_dir": str(default_runtime_dir(environ)),
        },
        "default",
        origins,
    )
    files: list[Path] = []
    project = Path(config_file) if config_file else cwd / PROJECT_CONFIG
    if config_file and not _is_file(project):
        raise UsageError(f"config file {project} does not exist")
    for path in (SYSTEM_CONFIG, user_config_path(environ), project):
        if _is_file(path):
            _merge(merged, _read_toml(path), str(path), origins)
            files.append(path)
    env_layer = {key: environ[var] for var, key in ENV_SETTINGS.items() if environ.get(var)}
    for var, key in ENV_SETTINGS.items():
        if key in env_layer:
            _merge(merged, {key: env_layer[key]}, f"env {var}", origins)
    _merge(merged, {k: v for k, v in (flags or {}).items() if v is not None}, "flag", origins)

    secrets, configs, templates = (
        {
            name: _binding(name, entry, _table_origin(origins, f"{table}.{name}"), table)
            for name, entry in merged.get(table, {}).items()
        }
        for table in ("secrets", "configs", "templates")
    )
    try:
        cache_ttl = float(merged.get("cache_ttl", 0))
    except ValueError:
        raise UsageError(
            f"cache_ttl {merged['cache_ttl']!r} from {origins.get('cache_ttl')} is not a number"
        ) from None
    return Config(
        state_dir=Path(merged["state_dir"]),
        runtime_dir=Path(merged["runtime_dir"]),
        host=merged.get("host"),
        strict=_truthy(merged.get("strict", False)),
        cache_ttl=cache_ttl,
        runtime=str(merged.get("runtime", "auto")),
        log_level=str(merged.get("log_level", "warning")),
        mount_type=str(merged.get("mount_type", "tmpfs")),
        redact=redact_setting(merged.get("redact", "auto")) or "auto",
        secrets=secrets,
        configs=configs,
        templates=templates,
        providers=merged.get("providers", {}),
        daemon=merged.get("daemon", {}),
        policy=merged.get("policy", {}),
        access_log=merged.get("access_log", {}),
        origins=origins,
        files=tuple(files),
    )
