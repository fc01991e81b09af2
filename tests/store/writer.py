"""A store writer that the fault tests run as separate processes.

``writer.py mixed INDEX COUNT``: COUNT create-or-rotate writes, alternating between names
shared by every writer and names of its own; prints ``NAME VERSION SHA256`` per commit.
``writer.py big NAME``: rotates NAME with large values forever; prints ``writing V``
before and ``committed V`` after each write. The value of version V is ``big_value(V)``,
so a reader can check any version.
"""

from __future__ import annotations

import hashlib
import os
import sys

from secretd.config import load_config
from secretd.store import MAX_VALUE, LocalStore, SecretExists

SHARED = ("shared-0", "shared-1", "shared-2")


def big_value(version: int) -> bytes:
    return hashlib.shake_256(f"big:{version}".encode()).digest(MAX_VALUE - 1)


def mixed(index: int, count: int) -> None:
    config = load_config()
    for i in range(count):
        name = SHARED[i % len(SHARED)] if i % 2 else f"own-{index}-{i % 5}"
        value = f"{index}:{i}:".encode() + os.urandom(16)
        store = LocalStore.from_config(config)  # a fresh open per write, like a CLI call
        try:
            version = store.create(name, value).version
        except SecretExists:
            version = store.rotate(name, value).version
        print(name, version, hashlib.sha256(value).hexdigest(), flush=True)


def big(name: str) -> None:
    store = LocalStore.from_config(load_config())
    version = store.current_version(name)
    while True:
        version += 1
        value = big_value(version)
        print("writing", version, flush=True)
        committed = store.rotate(name, value).version
        assert committed == version, (committed, version)
        print("committed", version, flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "mixed":
        mixed(int(sys.argv[2]), int(sys.argv[3]))
    else:
        big(sys.argv[2])
