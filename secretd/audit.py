"""``secretd audit``: where a Docker host, compose files and Dockerfiles expose secrets.

It reads what ``docker inspect`` and ``docker history`` show anyone who may talk to the
engine (containers' environment, command, entrypoint and labels; images' environment,
labels and build history, where ``ARG`` values used by a ``RUN`` are baked in as
``|1 NAME=value``), compose ``environment:`` and ``build.args``, and Dockerfile ``ENV``,
``ARG`` and ``RUN`` lines. Each ``(name, value)`` pair is judged by exposure.py, the rules
``secretd run`` warns with, so a host audit and a run's warning never disagree.

A finding holds where, which variable, why, how bad (``Level``), the fix, and a
fingerprint: never the value. The fingerprint is a keyed hash (HMAC-SHA-256 of the value
under a key of this machine, or ``SECRETD_AUDIT_KEY``) mixed with the place and name, cut
to 12 hex digits: stable between runs, so CI can track a finding, yet no one can test a
guessed password against it without the key.

Levels:
    HIGH: the value alone is a credential by its form (a known token shape such as an AWS
        or GitHub key, a PEM private key, an ``Authorization`` value).
    MEDIUM: the name and value rules (``DB_PASSWORD=...``), a URL with a password, a
        connection string or JSON with a secret field.
    LOW: only a long random string, a guess.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import os
import re
import secrets
import shlex
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import exposure, safeopen
from .errors import AuditIncomplete, LaunchError, UsageError

if TYPE_CHECKING:
    import docker
    import yaml

KEY_ENV = "SECRETD_AUDIT_KEY"
KEY_FILE = "audit.key"
KEY_BYTES = 32


class Level(enum.IntEnum):
    """How sure a finding is that a credential is exposed; ``--fail-on`` compares these."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3

    def __str__(self) -> str:
        return self.name.lower()


# Reason phrases of exposure.py that name a credential by its form alone.
HIGH_REASONS = ("value matches the ", "value is an Authorization header value")
LOW_REASONS = ("value is a long random string",)


def level_of(reason: str) -> Level:
    if reason.startswith(HIGH_REASONS):
        return Level.HIGH
    if reason.startswith(LOW_REASONS):
        return Level.LOW
    return Level.MEDIUM


def judge(name: str, value: str) -> tuple[Level, str] | None:
    """The level and reason of a pair, or ``None``: the value's reason when it is a known
    shape (the strongest claim), else the name's, else the value's."""
    by_value = exposure.variable_value_reason(name, value)
    if by_value and level_of(by_value) is Level.HIGH:
        return Level.HIGH, by_value
    reason = exposure.variable_name_reason(name, value) or by_value
    return (level_of(reason), reason) if reason else None


@dataclass(frozen=True)
class Finding:
    """One exposed secret: ``subject`` (a container, an image or a file) and ``detail``
    (``env``, ``history step 3/5``, ``service web environment``) say where."""

    kind: str  # container | image | compose | dockerfile
    subject: str
    detail: str
    line: int | None
    name: str
    reason: str
    level: Level
    fix: str
    fingerprint: str

    @property
    def where(self) -> str:
        at = f"{self.subject}:{self.line}" if self.line else self.subject
        return f"{self.kind} {at} {self.detail}"

    @property
    def file(self) -> str | None:
        """The file a finding is in (compose files and Dockerfiles), for SARIF."""
        return self.subject if self.kind in ("compose", "dockerfile") else None


@dataclass(frozen=True)
class Pair:
    """A name and value found at a place, before judging; ``how`` picks the fix."""

    detail: str
    line: int | None
    name: str
    value: str
    how: str  # env | arg | command | label | compose | compose-arg


def _secret_name(name: str) -> str:
    """A secret name for a fix; ``NAME`` for an unnamed command word (say what it is)."""
    return re.sub(r"[^a-z0-9_.-]+", "_", name.lower()).strip("_") or "NAME"


def fix_for(how: str, name: str, detail: str = "") -> str:
    """What to do instead, as a command or a snippet."""
    secret, shown = _secret_name(name), name or "it"
    if how == "arg":
        return (
            f"use a build secret, not ARG {shown}: docker build --secret id={secret},"
            f"env={name or secret.upper()} with RUN --mount=type=secret,id={secret}"
        )
    if how == "compose":
        service = detail.split()[1] if detail.startswith("service ") else "SERVICE"
        return (
            f"drop {shown} from environment: and use a compose secret: services: {service}: "
            f"secrets: [{{source: {secret}, target: {secret}}}]; secrets: {secret}: "
            f"{{environment: {name or secret.upper()}}} (read /run/secrets/{secret}), or "
            f"secretd run --secret {secret} IMAGE ..."
        )
    if how == "compose-arg":
        return (
            f"drop {shown} from build.args: use build: secrets: [{secret}] with "
            f"RUN --mount=type=secret,id={secret}"
        )
    if how == "label":
        return f"remove label {shown}: labels are metadata anyone with docker inspect reads"
    if how == "command":
        return (
            f"take it out of the command: secretd run --secret {secret} IMAGE ... and read "
            f"/run/secrets/{secret}"
        )
    return f"secretd run --secret {secret} IMAGE ... and read /run/secrets/{secret}, not ${name}"


class Auditor:
    """Judges pairs into findings under one fingerprint key."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def findings(self, kind: str, subject: str, pairs: Iterable[Pair]) -> Iterator[Finding]:
        for pair in pairs:
            verdict = judge(pair.name, pair.value)
            if verdict is None:
                continue
            level, reason = verdict
            place = f"{kind}\0{subject}\0{pair.detail}\0{pair.name}"
            keyed = hmac.new(self._key, pair.value.encode(errors="replace"), "sha256")
            digest = hashlib.sha256(f"{place}\0{keyed.hexdigest()}".encode(errors="replace"))
            yield Finding(
                kind, subject, pair.detail, pair.line, pair.name or "argument", reason, level,
                fix_for(pair.how, pair.name, pair.detail), digest.hexdigest()[:12],
            )  # fmt: skip


def fingerprint_key(state_dir: Path, environ: Mapping[str, str]) -> bytes:
    """``SECRETD_AUDIT_KEY``, else this machine's key in the state directory (made 0600 on
    first use), else a key for this run only (fingerprints then change between runs)."""
    if environ.get(KEY_ENV):
        return environ[KEY_ENV].encode()
    path = state_dir / KEY_FILE
    try:
        key = safeopen.read_file(path)
    except FileNotFoundError:
        key = _new_key(path)
    except OSError:
        key = b""
    return key if len(key) == KEY_BYTES else secrets.token_bytes(KEY_BYTES)


def _new_key(path: Path) -> bytes:
    """A new key, published whole: written under a temporary name (0600), then linked to
    ``path``, so an audit running at the same time reads the winner's key, never half."""
    key = secrets.token_bytes(KEY_BYTES)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{KEY_FILE}.") as tmp:
            tmp.write(key)
            tmp.flush()
            os.link(tmp.name, path)
    except FileExistsError:
        try:
            return safeopen.read_file(path)
        except OSError:
            return b""
    except OSError:
        return b""
    return key


# --- commands, Dockerfiles and history -------------------------------------------------

NAME_VALUE = re.compile(r"([A-Za-z_][A-Za-z0-9_.\-]*)=(.*)", re.DOTALL)


def _split(text: str, escape: str = "\\") -> list[str]:
    """Shell-like words, quotes removed; ``escape`` is the Dockerfile's escape character."""
    lexer = shlex.shlex(text, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    lexer.escape = escape
    try:
        return list(lexer)
    except ValueError:  # an unbalanced quote: words as they stand
        return text.split()


def argv_pairs(words: Sequence[str], detail: str, line: int | None = None) -> Iterator[Pair]:
    """A command's words as pairs: ``NAME=value`` and ``--flag=value`` by name and value,
    ``--flag value`` too, any other word by its value alone (a quoted script such as
    ``sh -c '...'`` whole: its ``NAME=value`` fields, URLs and headers are value rules)."""
    flag = ""
    for word in words:
        if word.startswith("--") and len(word) > 2:
            name, eq, value = word[2:].partition("=")
            if eq:
                yield Pair(detail, line, name, value, "command")
                flag = ""
            else:
                flag = name
            continue
        if flag and not word.startswith("-"):
            yield Pair(detail, line, flag, word, "command")
        elif match := NAME_VALUE.fullmatch(word):
            yield Pair(detail, line, match[1], match[2], "command")
        else:
            yield Pair(detail, line, "", word, "command")
        flag = ""


def instruction_pairs(
    keyword: str, rest: str, detail: str, line: int | None, escape: str = "\\"
) -> Iterator[Pair]:
    """The pairs of one Dockerfile instruction: ``ENV K=V ...`` and legacy ``ENV K V``,
    ``ARG K=default ...`` (an ``ARG`` without a default holds nothing), ``RUN`` words."""
    keyword = keyword.upper()
    if keyword == "ENV":
        words = _split(rest, escape)
        if words and "=" not in words[0]:  # legacy: the rest of the line is the value
            name, _, value = rest.strip().partition(" ")
            yield Pair(detail, line, name, value.strip(), "env")
            return
        for word in words:
            if match := NAME_VALUE.fullmatch(word):
                yield Pair(detail, line, match[1], match[2], "env")
    elif keyword == "ARG":
        for word in _split(rest, escape):
            if match := NAME_VALUE.fullmatch(word):
                yield Pair(detail, line, match[1], match[2], "arg")
    elif keyword == "RUN":
        yield from argv_pairs(_split(rest, escape), detail, line)


ESCAPE_DIRECTIVE = re.compile(r"#\s*escape\s*=\s*([\\`])\s*", re.IGNORECASE)


def dockerfile_escape(text: str) -> str:
    """The escape character: ``\\``, or what a ``# escape=`` parser directive (a comment
    line at the very top) says."""
    for line in text.splitlines():
        if match := ESCAPE_DIRECTIVE.fullmatch(line.strip()):
            return match[1]
        if not line.strip().startswith("#"):
            break
    return "\\"


def dockerfile_instructions(text: str) -> Iterator[tuple[int, str, str]]:
    """``(line, keyword, rest)`` for each instruction, continuation lines joined (comments
    inside skipped)."""
    escape = dockerfile_escape(text)
    lines = text.splitlines()
    start, parts = 0, list[str]()
    for number, raw in enumerate(lines, 1):
        stripped = raw.strip()
        if stripped.startswith("#") or (parts and not stripped):
            continue
        if not parts:
            start = number
        if stripped.endswith(escape):
            parts.append(stripped[:-1])
            continue
        parts.append(stripped)
        instruction = "".join(parts).strip()
        parts = []
        if instruction:
            keyword, _, rest = instruction.partition(" ")
            yield start, keyword, rest
    if parts:
        keyword, _, rest = "".join(parts).strip().partition(" ")
        yield start, keyword, rest


def dockerfile_pairs(text: str) -> Iterator[Pair]:
    escape = dockerfile_escape(text)
    for line, keyword, rest in dockerfile_instructions(text):
        yield from instruction_pairs(keyword, rest, keyword.upper(), line, escape)


BUILD_ARGS = re.compile(r"(?:RUN\s+)?\|(\d+)\s+(.*)", re.DOTALL)
NOP = "/bin/sh -c #(nop)"


def history_pairs(created_by: str, detail: str) -> Iterator[Pair]:
    """A history step's pairs: the build arguments a ``RUN`` saw (``|2 A=x B=y cmd``,
    values without spaces as Docker prints them), ``ENV``/``ARG`` steps, the command."""
    text = created_by.strip().removesuffix("# buildkit").strip()
    if text.startswith(NOP):
        text = text.removeprefix(NOP).strip()
    if match := BUILD_ARGS.fullmatch(text):
        count, words = int(match[1]), match[2].split(" ")
        for word in words[:count]:
            if pair := NAME_VALUE.fullmatch(word):
                yield Pair(detail, None, pair[1], pair[2], "arg")
        text = " ".join(words[count:])
    keyword, _, rest = text.partition(" ")
    if keyword.upper() in ("ENV", "ARG", "RUN"):
        yield from instruction_pairs(keyword, rest, detail, None)
    elif text:
        yield from argv_pairs(_split(text), detail)


def env_pairs(env: Iterable[str] | None, detail: str = "env") -> Iterator[Pair]:
    for item in env or ():
        name, _, value = item.partition("=")
        yield Pair(detail, None, name, value, "env")


def label_pairs(labels: dict[str, str] | None) -> Iterator[Pair]:
    for name, value in (labels or {}).items():
        yield Pair("label", None, name, value or "", "label")


# --- sources ---------------------------------------------------------------------------


def read_text(path: Path, what: str) -> str:
    try:
        return safeopen.decode(safeopen.read_file(path), f"{what} {path}")
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror}") from None


def audit_dockerfile(auditor: Auditor, path: Path) -> list[Finding]:
    return list(
        auditor.findings("dockerfile", str(path), dockerfile_pairs(read_text(path, "--dockerfile")))
    )


def compose_pairs(text: str, path: Path) -> Iterator[Pair]:
    """Each service's ``environment:`` and ``build.args`` entries (map or list form), with
    the line of each value; entries without a value (taken from the shell) hold nothing."""
    import yaml

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise UsageError(f"--compose {path} is not valid YAML{at}") from None
    except RecursionError:  # the composer recurses once per level of nesting
        raise UsageError(f"--compose {path} is nested too deeply") from None
    services = _get(root, "services")
    for service_key, service in _items(services):
        name = str(service_key.value)
        yield from _entries(_get(service, "environment"), f"service {name} environment", "compose")
        build = _get(service, "build")
        yield from _entries(_get(build, "args"), f"service {name} build.args", "compose-arg")


def _items(node: yaml.Node | None) -> Iterator[tuple[Any, Any]]:
    """A mapping node's ``(key, value)`` nodes, then those of its ``<<`` merge keys that
    it does not set itself (YAML's merge: the mapping's own keys win)."""
    import yaml

    if not isinstance(node, yaml.MappingNode):
        return
    own = [(key, value) for key, value in node.value if key.value != "<<"]
    yield from own
    seen = {key.value for key, _ in own}
    for key, value in node.value:
        if key.value == "<<":
            for merged in value.value if isinstance(value, yaml.SequenceNode) else [value]:
                for item in _items(merged):
                    if item[0].value not in seen:
                        seen.add(item[0].value)
                        yield item


def _get(node: yaml.Node | None, name: str) -> Any:
    return next((value for key, value in _items(node) if key.value == name), None)


def _entries(node: yaml.Node | None, detail: str, how: str) -> Iterator[Pair]:
    import yaml

    if isinstance(node, yaml.MappingNode):
        for key, value in _items(node):
            if isinstance(value, yaml.ScalarNode) and value.tag != "tag:yaml.org,2002:null":
                yield Pair(detail, value.start_mark.line + 1, str(key.value), str(value.value), how)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            if isinstance(item, yaml.ScalarNode) and "=" in str(item.value):
                name, _, value = str(item.value).partition("=")
                yield Pair(detail, item.start_mark.line + 1, name, value, how)


def audit_compose(auditor: Auditor, path: Path) -> list[Finding]:
    return list(
        auditor.findings("compose", str(path), compose_pairs(read_text(path, "--compose"), path))
    )


def audit_docker(auditor: Auditor, host: str) -> list[Finding]:
    """Every container (any state) and every image of the engine at ``host``.

    Raises:
        AuditIncomplete: Docker cannot be reached or refused a request (exit 125).
    """
    from .runtime.engines.docker import DockerClient

    engine = DockerClient(host)
    try:
        with engine.errors():
            client = engine.client()
            return [*_containers(auditor, client), *_images(auditor, client)]
    except LaunchError as exc:
        raise AuditIncomplete(exc.message, exc.hint) from None
    finally:
        engine.close()


def _containers(auditor: Auditor, client: docker.APIClient) -> Iterator[Finding]:
    for summary in client.containers(all=True):
        info = client.inspect_container(summary["Id"])
        config = info.get("Config") or {}
        subject = f"{info.get('Name', '').lstrip('/')} ({summary['Id'][:12]})"
        pairs = [
            *env_pairs(config.get("Env")),
            *argv_pairs(config.get("Entrypoint") or [], "Entrypoint"),
            *argv_pairs(config.get("Cmd") or [], "Cmd"),
            *label_pairs(config.get("Labels")),
        ]
        yield from auditor.findings("container", subject, pairs)


def _images(auditor: Auditor, client: docker.APIClient) -> Iterator[Finding]:
    for summary in client.images():
        tags = [tag for tag in summary.get("RepoTags") or () if tag != "<none>:<none>"]
        subject = tags[0] if tags else summary["Id"].removeprefix("sha256:")[:12]
        config = client.inspect_image(summary["Id"]).get("Config") or {}  # type: ignore[no-untyped-call]
        steps = list(reversed(client.history(summary["Id"])))  # type: ignore[no-untyped-call]
        pairs = [*env_pairs(config.get("Env")), *label_pairs(config.get("Labels"))]
        for number, step in enumerate(steps, 1):
            detail = f"history step {number}/{len(steps)}"
            pairs.extend(history_pairs(step.get("CreatedBy") or "", detail))
        yield from auditor.findings("image", subject, pairs)
