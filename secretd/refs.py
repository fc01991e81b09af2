"""The reference grammar users type: one parser for ``--secret``, ``--config``,
``--template``, their ``[secrets.NAME]``/``[configs.NAME]``/``[templates.NAME]`` tables in
``secretd.toml``, the library (``secretd.parse_ref``) and a compose file's ``secrets:``
and ``configs:`` (``compose/plan.py``).

Forms (the whole grammar, every scheme: docs/references.md):

* ``api_key``: a name, bound in ``secretd.toml`` or found in the local store;
* ``api_key=vault:secret/app#api_key``: bind a name to a provider URI;
* ``source=api_key,target=app.key,uid=1000,gid=1000,mode=0400``: Docker's long syntax.

A config takes Docker Swarm's config defaults: target ``/<name>``, a relative target is
relative to ``/``, mode 0444. A template's source is a file path and its target is
required (here or in ``[templates.NAME]``).

Every mistake is a ``UsageError`` that quotes the offending part, raised before anything
is resolved or started.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl

from .errors import SecretNotFound, UsageError
from .spec import DEFAULT_MODE, DEFAULT_SECRETS_DIR, SecretRef, TemplateRef

# Used with fullmatch: "$" would also match before a trailing newline ("api_key\n").
NAME_RE = re.compile(r"[a-zA-Z0-9]+(?:[a-zA-Z0-9-_.]*[a-zA-Z0-9])?")
SCHEME_RE = re.compile(r"[a-z][a-z0-9+.-]*")
NAME_MAX = 64
PATH_MAX = 4096
ELEMENT_MAX = 255
LONG_KEYS = frozenset(
    {"source", "src", "target", "uid", "gid", "mode", "refresh", "max_reads", "file_env", "redact"}
)
VARIABLE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
ENV_PATTERN_RE = re.compile(r"[A-Za-z0-9_*]*[A-Za-z0-9_][A-Za-z0-9_*]*")
HINT = "see 'secretd run --help' for the reference grammar"
KINDS = ("secret", "config", "template")
MIN_REFRESH = 1.0
DURATION_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)?")
DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class Binding:
    """What ``[secrets.NAME]`` in a config file says about a name."""

    source: str
    target: str | None = None
    uid: int | None = None
    gid: int | None = None
    mode: int | None = None
    delimiters: tuple[str, str] | None = None  # [templates.NAME] only
    refresh: float | None = None  # [secrets.NAME] only
    max_reads: int | None = None  # [secrets.NAME] only; a FUSE mount's
    file_env: str | None = None  # [secrets.NAME] only
    redact: bool | None = None  # [secrets.NAME] only


@dataclass(frozen=True)
class Locator:
    """The provider-specific part of a URI, split the way every provider needs it:
    ``PATH#FRAGMENT?QUERY`` (the query may also come before the fragment)."""

    path: str
    fragment: str | None
    query: Mapping[str, str]


def split_locator(locator: str) -> Locator:
    body, _, query = locator.partition("?")
    if "#" in query:
        query, _, fragment = query.partition("#")
        path = body
    else:
        path, hash_, fragment = body.partition("#")
        if not hash_:
            fragment = ""
    pairs = parse_qsl(query, keep_blank_values=True) if query else []
    return Locator(path=path, fragment=fragment or None, query=dict(pairs))


def check_name(name: str, what: str = "secret name") -> str:
    """Raise a UsageError unless ``name`` follows Docker Swarm's rules for names."""
    if not name or len(name) > NAME_MAX or not NAME_RE.fullmatch(name):
        raise UsageError(
            f"invalid {what} {name!r}",
            f"use 1-{NAME_MAX} letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit",
        )
    return name


def parse_mode(value: str | int, context: str) -> int:
    """Parse an octal mode (``"0400"``, ``"400"``, ``"0o400"`` or an int from TOML/YAML)."""
    if isinstance(value, int) and not isinstance(value, bool):
        mode = value
    else:
        text = str(value).strip().lower().removeprefix("0o")
        if not text or not all(c in "01234567" for c in text):
            raise UsageError(
                f"invalid mode {value!r} in {context!r}", "give an octal mode like 0400"
            )
        mode = int(text, 8)
    if 0o777 < mode <= 0o7777:
        raise UsageError(
            f"mode {mode:04o} in {context!r} has setuid, setgid or sticky bits",
            "secret files take permission bits only (0000-0777)",
        )
    if not 0 <= mode <= 0o777:
        raise UsageError(f"mode {value!r} in {context!r} is outside 0000-0777")
    return mode


def parse_id(value: str | int, what: str, context: str) -> int:
    try:
        if isinstance(value, bool | float):  # TOML's true or 1000.5 is no uid
            raise ValueError(value)
        number = int(value)
    except (TypeError, ValueError):
        raise UsageError(
            f"invalid {what} {value!r} in {context!r}", f"give a numeric {what}"
        ) from None
    if not 0 <= number < 2**32 - 1:
        raise UsageError(f"{what} {value!r} in {context!r} is out of range")
    return number


def parse_refresh(value: str | int | float, context: str) -> float:
    """A refresh interval: ``30s``, ``5m``, ``1h``, ``1500ms`` or a number of seconds,
    at least one second (a provider polled faster is hammered for nothing).

    Raises:
        UsageError: not a duration, or under one second.
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = DURATION_RE.fullmatch(str(value).strip())
        if match is None:
            raise UsageError(
                f"invalid refresh {value!r} in {context!r}", "give a duration like 30s, 5m or 1h"
            )
        seconds = float(match[1]) * DURATION_UNITS[match[2] or "s"]
    if not seconds >= MIN_REFRESH or seconds > 366 * 86400:
        raise UsageError(
            f"refresh {value!r} in {context!r} is under 1 s"
            if not seconds >= MIN_REFRESH
            else f"refresh {value!r} in {context!r} is over a year",
            "give a duration of 1s or more, like 30s or 5m",
        )
    return seconds


def parse_max_reads(value: str | int, context: str) -> int:
    """``max_reads=N``: how many opens of a file a FUSE mount allows (1 or more).

    Raises:
        UsageError: not a whole number of at least 1.
    """
    text = str(value).strip()
    if isinstance(value, bool) or not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise UsageError(
            f"invalid max_reads {value!r} in {context!r}",
            "give a whole number of opens of at least 1 (leave it out for no limit)",
        )
    return int(text)


def check_target(target: str, context: str) -> str:
    """Validate a target path: relative to the secrets directory, or absolute."""
    if "\0" in target:
        raise UsageError(f"target in {context!r} contains a NUL byte")
    if len(target.encode()) > PATH_MAX:
        raise UsageError(f"target in {context!r} is longer than {PATH_MAX} bytes")
    elements = target[1:].split("/") if target.startswith("/") else target.split("/")
    for element in elements:
        if not element:
            raise UsageError(f"target {target!r} in {context!r} has an empty path element", HINT)
        if element == "." or element.startswith(".."):
            raise UsageError(
                f"target {target!r} in {context!r} has the element {element!r}",
                "targets may not contain '.', '..' or names starting with '..'",
            )
        if len(element.encode()) > ELEMENT_MAX:
            raise UsageError(
                f"target {target!r} in {context!r} has an element longer than {ELEMENT_MAX} bytes"
            )
    return target


def _split_long(text: str, kind: str = "secret") -> dict[str, str]:
    fields: dict[str, str] = {}
    for part in text.split(","):
        key, eq, value = part.partition("=")
        key = key.strip()
        if not eq or key not in LONG_KEYS:
            raise UsageError(
                f"invalid field {part!r} in {kind} reference {text!r}",
                "use source=, target=, uid=, gid=, mode=, refresh=, max_reads=, file_env=, redact=",
            )
        key = "source" if key == "src" else key
        if key in fields:
            raise UsageError(f"field {key!r} given twice in {kind} reference {text!r}")
        fields[key] = value
    if not fields.get("source"):
        raise UsageError(f"{kind} reference {text!r} has no source", "add source=NAME")
    return fields


def _derived_name(source: str, text: str) -> str:
    """A file name for a bare URI: its #fragment or the last element of its path."""
    loc = split_locator(source.partition(":")[2])
    candidate = loc.fragment or re.split(r"[/:]", loc.path.rstrip("/"))[-1]
    if not candidate or len(candidate) > NAME_MAX or not NAME_RE.fullmatch(candidate):
        raise UsageError(
            f"cannot derive a secret name from {text!r}", f"name it: --secret NAME={source}"
        )
    return candidate


def parse_ref(
    text: str, bindings: Mapping[str, Binding] | None = None, kind: str = "secret"
) -> SecretRef:
    """Parse one ``--secret`` or ``--config`` reference; bare names resolve through
    ``bindings`` (``[secrets.*]`` or ``[configs.*]``), else the local store.

    Raises:
        UsageError: quoting the offending part of ``text``.
    """
    if kind not in KINDS[:2]:
        raise ValueError(f"parse_ref takes a secret or a config, not {kind!r}")
    return _build(_fields(text, kind), text, bindings or {}, kind)


def _fields(text: str, kind: str) -> dict[str, str]:
    """A reference's parts: ``name`` (for ``NAME=SOURCE``), ``source``, and the long
    syntax's other keys."""
    if not text.strip():
        raise UsageError(f"empty {kind} reference", HINT)
    if "\0" in text:
        raise UsageError(f"{kind} reference contains a NUL byte", HINT)
    head, eq, rest = text.partition("=")
    if eq and head.strip() in LONG_KEYS:
        fields = _split_long(text, kind)
    elif eq and ":" not in head:  # a "=" after "scheme:" belongs to a URI query
        fields = {"name": check_name(head, f"{kind} name"), "source": rest}
    else:
        fields = {"source": text}
    if not fields["source"]:
        raise UsageError(f"{kind} reference {text!r} has an empty source", HINT)
    return fields


def _build(
    fields: Mapping[str, str], text: str, bindings: Mapping[str, Binding], kind: str
) -> SecretRef:
    source = fields["source"]
    binding: Binding | None = None
    if ":" in source and not SCHEME_RE.fullmatch(source.partition(":")[0]):
        raise UsageError(
            f"invalid source {source!r} in {kind} reference {text!r}",
            "write SCHEME:LOCATOR, e.g. vault:secret/app#key",
        )
    if ":" in source:
        name = fields.get("name") or (
            posixpath.basename(fields["target"]) if fields.get("target") else None
        )
        name = check_name(name, f"{kind} name") if name else _derived_name(source, text)
    else:
        check_name(source, f"{kind} name")
        name = fields.get("name", source)
        binding = bindings.get(source)
        source = binding.source if binding else f"local:{source}"

    target = fields.get("target") or (binding.target if binding and binding.target else name)
    uid: int | None = binding.uid if binding else None
    gid: int | None = binding.gid if binding else None
    mode = binding.mode if binding and binding.mode is not None else DEFAULT_MODE
    if "uid" in fields:
        uid = parse_id(fields["uid"], "uid", text)
    if "gid" in fields:
        gid = parse_id(fields["gid"], "gid", text)
    if "mode" in fields:
        mode = parse_mode(fields["mode"], text)
    refresh = binding.refresh if binding else None
    if "refresh" in fields:
        refresh = parse_refresh(fields["refresh"], text)
    max_reads = binding.max_reads if binding else None
    if "max_reads" in fields:
        max_reads = parse_max_reads(fields["max_reads"], text)
    file_env = binding.file_env if binding else None
    if "file_env" in fields:
        file_env = check_variable(fields["file_env"], text)
    redact = True if binding is None or binding.redact is None else binding.redact
    if "redact" in fields:
        redact = parse_bool(fields["redact"], "redact", text)
    if kind == "config":
        target = posixpath.join("/", target)
    return SecretRef(
        name=name,
        source=source,
        target=check_target(target, text),
        uid=uid,
        gid=gid,
        mode=mode,
        kind=kind,
        refresh=refresh,
        max_reads=max_reads,
        file_env=file_env,
        redact=redact,
    )


def check_variable(name: str, context: str) -> str:
    """Raise a UsageError unless ``name`` can be an environment variable's name."""
    if not VARIABLE_RE.fullmatch(name):
        raise UsageError(
            f"invalid variable name {name!r} in {context!r}",
            "use letters, digits and '_', not starting with a digit",
        )
    return name


def parse_bool(value: str | bool, what: str, context: str) -> bool:
    """``true`` or ``false`` (``redact=false``), as written or from TOML."""
    if isinstance(value, bool):
        return value
    if value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise UsageError(f"invalid {what} {value!r} in {context!r}", "give true or false")


def glob_matches(pattern: str, names: Iterable[str]) -> list[str]:
    """The ``names`` that ``pattern`` matches, sorted; ``*`` is the only wildcard (a
    ``?`` starts a query and ``[`` may be part of a key)."""
    regex = re.compile(".*".join(map(re.escape, pattern.split("*"))), re.DOTALL)
    return sorted(name for name in names if regex.fullmatch(name))


def env_matches(pattern: str, environ: Iterable[str]) -> list[str]:
    """The variables ``env:PATTERN`` stands for.

    Raises:
        UsageError: the pattern is no variable name with ``*``s, or matches everything.
    """
    if not ENV_PATTERN_RE.fullmatch(pattern):
        raise UsageError(
            f"invalid variable pattern {pattern!r} in 'env:{pattern}'",
            "use letters, digits, '_' and '*', with at least one letter, digit or '_' "
            "(env:* would take every variable): e.g. env:APP_*",
        )
    return glob_matches(pattern, environ)


def expand(
    text: str,
    bindings: Mapping[str, Binding] | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[SecretRef, ...]:
    """One ``--secret`` reference as the secrets it stands for: itself, or for a pattern
    without a name or target (``env:APP_*``) one per variable of ``environ`` it matches,
    each as ``env:VAR`` would be (named after the variable, as it is spelled).

    Raises:
        UsageError: a malformed reference, or ``file_env=`` on a pattern.
        SecretNotFound: the pattern matches no variable.
    """
    fields = _fields(text, "secret")
    source = fields["source"]
    scheme, _, locator = source.partition(":")
    pattern = split_locator(locator).path
    if scheme != "env" or "*" not in pattern or "name" in fields or "target" in fields:
        return (_build(fields, text, bindings or {}, "secret"),)
    if "file_env" in fields:
        raise UsageError(
            f"file_env= names one variable, but {source!r} stands for several secrets",
            f"drop file_env=, or name the secrets one by one: env:{pattern.replace('*', 'X')}",
        )
    found = env_matches(pattern, environ or {})
    if not found:
        raise SecretNotFound(
            f"no environment variable matches {pattern!r} (secret reference {text!r})",
            "export them before running secretd, or check the pattern",
        )
    rest = locator[len(pattern) :]
    return tuple(
        _build({**fields, "source": f"env:{var}{rest}"}, text, bindings or {}, "secret")
        for var in found
    )


def env_variables(refs: Iterable[SecretRef], environ: Mapping[str, str]) -> set[str]:
    """The variables ``env:`` references read, which a host command then goes without
    (a ``?file`` variable's too: it only says where the value was)."""
    found: set[str] = set()
    for ref in refs:
        if ref.scheme == "env":
            path = split_locator(ref.locator).path
            found.update(env_matches(path, environ) if "*" in path else [path])
    return found


def named_file_env(
    refs: Iterable[SecretRef], secrets_dir: str = DEFAULT_SECRETS_DIR
) -> tuple[tuple[str, str], ...]:
    """``file_env=VAR`` of the long syntax: ``VAR=<the file's path>`` for each reference
    that asks for one (``POSTGRES_PASSWORD_FILE``, the name an image reads)."""
    return tuple((ref.file_env, target_path(ref, secrets_dir)) for ref in refs if ref.file_env)


def parse_template(text: str, bindings: Mapping[str, Binding] | None = None) -> TemplateRef:
    """Parse one ``--template``: ``source=PATH,target=T[,uid=,gid=,mode=]``, or a NAME
    bound by ``[templates.NAME]``. The source is a template file, never a provider URI;
    a relative source stays relative (the CLI anchors it to its working directory).

    Raises:
        UsageError: quoting the offending part of ``text``.
    """
    if not text.strip():
        raise UsageError("empty template reference", HINT)
    if "\0" in text:
        raise UsageError("template reference contains a NUL byte", HINT)
    head, eq, _ = text.partition("=")
    binding: Binding | None = None
    if eq and head.strip() in LONG_KEYS:
        fields = _split_long(text, "template")
        for key in ("refresh", "file_env", "redact"):
            if key in fields:
                raise UsageError(
                    f"template reference {text!r} has {key}=, which templates lack",
                    f"set {key}= on the secrets the template reads",
                )
    else:
        binding = (bindings or {}).get(check_name(text, "template name"))
        if binding is None:
            raise UsageError(
                f"template {text!r} is not bound in secretd.toml",
                f"add [templates.{text}] or write source=PATH,target=/PATH",
            )
        fields = {"source": binding.source, "name": text}
    target = fields.get("target") or (binding.target if binding else None)
    if not target:
        raise UsageError(
            f"template reference {text!r} has no target", "add target=/PATH (where it lands)"
        )
    target = check_target(posixpath.join("/", target), text)
    name = check_name(fields.get("name") or posixpath.basename(target), "template name")
    uid = parse_id(fields["uid"], "uid", text) if "uid" in fields else None
    gid = parse_id(fields["gid"], "gid", text) if "gid" in fields else None
    mode = parse_mode(fields["mode"], text) if "mode" in fields else None
    if binding is not None:
        uid, gid, mode = binding.uid, binding.gid, binding.mode
    return TemplateRef(
        name=name,
        source=fields["source"],
        target=target,
        uid=uid,
        gid=gid,
        mode=mode,
        delimiters=binding.delimiters if binding else None,
    )


def target_path(ref: SecretRef | TemplateRef, secrets_dir: str = DEFAULT_SECRETS_DIR) -> str:
    """Where the file lands, as seen from inside the container or sandbox."""
    if ref.target.startswith("/"):
        return ref.target
    return posixpath.join(secrets_dir, ref.target)


def check_unique_targets(
    refs: Iterable[SecretRef | TemplateRef], secrets_dir: str = DEFAULT_SECRETS_DIR
) -> None:
    """Two references (secrets, configs, templates) may not land on the same path, nor
    one inside the other's file."""
    seen: dict[str, SecretRef | TemplateRef] = {}
    for ref in refs:
        path = target_path(ref, secrets_dir)
        for other_path, other in seen.items():
            if (
                path == other_path
                or path.startswith(other_path + "/")
                or other_path.startswith(path + "/")
            ):
                both = (
                    f"{ref.kind}s {other.name!r} and {ref.name!r}"
                    if ref.kind == other.kind
                    else f"{other.kind} {other.name!r} and {ref.kind} {ref.name!r}"
                )
                raise UsageError(f"{both} both target {path!r}", "give one of them another target=")
        seen[path] = ref


def parse_refs(
    texts: Iterable[str],
    bindings: Mapping[str, Binding] | None = None,
    secrets_dir: str = DEFAULT_SECRETS_DIR,
    environ: Mapping[str, str] | None = None,
) -> tuple[SecretRef, ...]:
    """Every ``--secret`` of a run; ``env:`` patterns expand over ``environ``."""
    refs = tuple(ref for text in texts for ref in expand(text, bindings, environ))
    check_unique_targets(refs, secrets_dir)
    return refs
