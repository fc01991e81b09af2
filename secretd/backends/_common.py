"""Small helpers the simple providers share."""

from __future__ import annotations

import hashlib
import hmac
import os

# Versions of values that have none of their own are keyed hashes: they change when the
# value does, and the key (fresh per process) keeps them from identifying a value.
_VERSION_KEY = os.urandom(32)


def content_version(value: bytes) -> str:
    return hmac.new(_VERSION_KEY, value, hashlib.sha256).hexdigest()[:16]
