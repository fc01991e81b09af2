"""CI systems: which one runs secretd, and how its job log learns the values to hide.

GitHub Actions hides a value in the job log once a step prints ``::add-mask::VALUE`` on
its standard output; the runner matches log lines one at a time, so a multi-line value
is registered line by line, and a JSON value by each string inside it (the runner adds
the base64, URL and JSON-escaped forms of each registered value itself). secretd prints
these lines for every secret it resolved, before the command starts, and prints a value
in no other way. GitLab has no such command: there, output is redacted instead
(redact.py). Any other CI (``CI=true``, or a system known by its own variable) gets the
strict checks only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from .errors import UsageError
from .spec import Secret

TRUE = frozenset({"true", "1", "yes"})
# CI systems that say so with a variable of their own, some without CI=true.
OTHERS = (
    "BUILDKITE", "CIRCLECI", "TRAVIS", "DRONE", "TF_BUILD", "JENKINS_URL", "TEAMCITY_VERSION",
    "BITBUCKET_BUILD_NUMBER", "CODEBUILD_BUILD_ID", "WOODPECKER",
)  # fmt: skip

FORCED = ("github", "gitlab", "generic", "none")
# The variables that say a CI system runs the job (what --clean-env keeps besides CI*).
MARKERS = ("SECRETD_CI", "GITHUB_ACTIONS", "GITLAB_CI", *OTHERS)


@dataclass(frozen=True)
class CI:
    """The CI system a run is part of: ``name`` is ``github``, ``gitlab`` or ``generic``;
    ``origin`` the variable that told (``GITHUB_ACTIONS=true``), for messages."""

    name: str
    origin: str


def detect(environ: Mapping[str, str] | None = None) -> CI | None:
    """The CI system ``environ`` (default: secretd's environment) belongs to, or ``None``.

    ``SECRETD_CI`` decides when set: ``github``, ``gitlab`` or ``generic`` for a system
    secretd does not recognise (a self-hosted runner that sets nothing), ``none`` to be
    treated as outside CI (a test suite run inside a job).

    Raises:
        UsageError: ``SECRETD_CI`` holds something else.
    """
    env = os.environ if environ is None else environ
    forced = env.get("SECRETD_CI", "").lower()
    if forced:
        if forced not in FORCED:
            raise UsageError(
                f"SECRETD_CI={env['SECRETD_CI']!r} is not a CI system secretd knows",
                f"use one of {', '.join(FORCED)}",
            )
        return None if forced == "none" else CI(forced, f"SECRETD_CI={forced}")
    if env.get("GITHUB_ACTIONS", "").lower() == "true":
        return CI("github", "GITHUB_ACTIONS=true")
    if env.get("GITLAB_CI", "").lower() == "true":
        return CI("gitlab", "GITLAB_CI=true")
    if env.get("CI", "").lower() in TRUE:
        return CI("generic", f"CI={env['CI']}")
    for name in OTHERS:
        if env.get(name):
            return CI("generic", f"{name} is set")
    return None


def escape(text: str) -> str:
    """A workflow command's data as the runner reads it back (its ``escapeData``)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def mask_strings(value: bytes) -> list[str]:
    """What to register for one value: the value (a trailing newline dropped), else each
    line of a multi-line one, plus each string leaf of a JSON one (and its lines), each
    once; blank strings never (masking them would hide every space in the log). A value
    that is not UTF-8 cannot be in a text log as it is: nothing."""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return []
    found: dict[str, None] = {}
    for item in (text, *_json_strings(text)):
        for piece in _pieces(item):
            found[piece] = None
    return list(found)


def _pieces(text: str) -> Iterator[str]:
    text = text.rstrip("\r\n")
    lines = [line.rstrip("\r") for line in text.split("\n")] if "\n" in text else [text]
    return (line for line in lines if line.strip())


def _json_strings(text: str) -> Iterator[str]:
    if not text.lstrip().startswith(("{", "[")):
        return
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def mask_commands(values: Iterable[bytes]) -> bytes:
    """The ``::add-mask::`` lines for ``values``, one per string to hide."""
    strings: dict[str, None] = {}
    for value in values:
        for text in mask_strings(value):
            strings[text] = None
    return "".join(f"::add-mask::{escape(text)}\n" for text in strings).encode()


def register(ci: CI, secrets: Iterable[Secret], fd: int) -> None:
    """On GitHub Actions, write the mask lines for ``secrets`` (each file of a tree) to
    ``fd`` (the command's standard output, which the runner reads)."""
    if ci.name != "github":
        return
    values = [v for s in secrets for v in (s.tree.values() if s.tree is not None else [s.value])]
    data = memoryview(mask_commands(values))
    while data:
        data = data[os.write(fd, data) :]
