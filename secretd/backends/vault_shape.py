"""Vault's answers read with the types Vault promises: anything else is a damaged answer
(one line naming the field), never a ``KeyError`` or ``TypeError`` from deep inside."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..errors import ProviderError


def damaged(subject: str, name: str, what: str) -> ProviderError:
    return ProviderError(
        f"vault sent a damaged answer for {subject}: {name} is not {what}",
        "check that VAULT_ADDR or address in [providers.vault] is a Vault server",
    )


def obj(value: Any, name: str, subject: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise damaged(subject, name, "an object")
    return value


def text(value: Any, name: str, subject: str) -> str:
    if not isinstance(value, str):
        raise damaged(subject, name, "a string")
    return value


def number(value: Any, name: str, subject: str) -> int:
    """A whole number of seconds (or a version); missing is 0. Vault sends some as
    strings of digits."""
    if value is None:
        return 0
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return int(value)
    raise damaged(subject, name, "a number")
