"""Small helpers the simple providers share."""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping

# Versions of values that have none of their own are keyed hashes: they change when the
# value does, and the key (fresh per process) keeps them from identifying a value.
_VERSION_KEY = os.urandom(32)


def content_version(value: bytes) -> str:
    return hmac.new(_VERSION_KEY, value, hashlib.sha256).hexdigest()[:16]


def tree_content_version(tree: Mapping[str, bytes]) -> str:
    """One version for a tree of values: changes when a key is added, removed or changed
    (each key and value is length-prefixed, so no two trees give the same input)."""
    mac = hmac.new(_VERSION_KEY, digestmod=hashlib.sha256)
    for key, value in sorted(tree.items()):
        raw = key.encode()
        for part in (raw, value):
            mac.update(len(part).to_bytes(8, "big") + part)
    return mac.hexdigest()[:16]
