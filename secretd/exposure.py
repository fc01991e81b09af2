"""What ``docker inspect`` and ``/proc/<pid>/environ`` would expose: ``-e`` values that
look like secrets.

Names are judged by the words dockle looks for; values by detect-secrets' pattern plugins
(AWS keys, private keys, JWTs, GitHub/Slack/Stripe tokens, ...) plus our own entropy
rule, because detect-secrets' high-entropy plugins, scanning one bare value, flag plain
words like ``production``. detect-secrets is optional (the ``scan`` extra) and imported
only when there is a value to check.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

NAME_WORDS = ("PASSWORD", "PASSWD", "SECRET", "TOKEN", "KEY", "CREDENTIAL", "PRIVATE", "AUTH")
# dockle's accepted names, and the words that merely contain one of ours.
ACCEPTED_NAMES = frozenset({"GPG_KEY", "GPG_KEYS"})
BENIGN_WORDS = re.compile(r"AUTHOR|KEYBOARD|KEYMAP|MONKEY|TOKENIZERS_PARALLELISM")
SKIPPED_PLUGINS = frozenset(
    {"Base64HighEntropyString", "HexHighEntropyString", "KeywordDetector", "IPPublicDetector"}
)
BASE64ISH = re.compile(r"^[A-Za-z0-9+/=_\-]{20,}$")
HEXISH = re.compile(r"^[0-9a-fA-F]{32,}$")
BASE64_LIMIT = 4.2
HEX_LIMIT = 3.0


@dataclass(frozen=True)
class Exposure:
    """One ``-e`` variable that looks like a secret, and why (never its value)."""

    name: str
    reason: str

    def warning(self) -> str:
        return (
            f"-e {self.name} looks like a secret ({self.reason}); 'docker inspect' and "
            f"/proc/<pid>/environ expose environment values. Use --secret {self.name.lower()}."
        )


def name_reason(name: str) -> str | None:
    upper = name.upper()
    if upper in ACCEPTED_NAMES or upper.endswith("_FILE"):
        return None
    stripped = BENIGN_WORDS.sub("", upper)
    for word in NAME_WORDS:
        if word in stripped:
            return f"name contains {word}"
    return None


@cache
def _plugins() -> tuple[Any, ...] | None:
    try:
        from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    except ImportError:
        return None
    classes: list[Any] = list(get_mapping_from_secret_type_to_class().values())
    return tuple(plugin() for plugin in classes if plugin.__name__ not in SKIPPED_PLUGINS)


def _entropy(value: str) -> float:
    from detect_secrets.plugins.high_entropy_strings import Base64HighEntropyString

    return float(Base64HighEntropyString().calculate_shannon_entropy(value))


def value_reason(value: str) -> str | None:
    plugins = _plugins()
    if not value or plugins is None:
        return None
    plugin: Any
    for plugin in plugins:
        if plugin.analyze_line(filename="-e", line=value, line_number=0):
            return f"value matches the {plugin.secret_type} pattern"
    if HEXISH.match(value) and _entropy(value) >= HEX_LIMIT:
        return "value is a long random hex string"
    if BASE64ISH.match(value) and _entropy(value) >= BASE64_LIMIT:
        return "value is a long random string"
    return None


def check_env(env: Iterable[tuple[str, str]], allow: Sequence[str] = ()) -> list[Exposure]:
    """Every variable that looks like a secret, except those the user allowed."""
    found = []
    for name, value in env:
        if name in allow:
            continue
        reason = name_reason(name) or value_reason(value)
        if reason:
            found.append(Exposure(name, reason))
    return found
