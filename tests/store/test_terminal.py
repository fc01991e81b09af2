"""Prompts on a real terminal: passphrases and values typed by a user, never echoed."""

from __future__ import annotations

import os
import pty
import select
import sys
import time

from secretd.config import load_config
from secretd.sealing import Passphrases
from secretd.store import LocalStore


class Terminal:
    """``secretd ARGS`` on a pseudo-terminal that is its controlling terminal."""

    def __init__(self, *args: str) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execvpe(sys.executable, [sys.executable, "-m", "secretd", *args], os.environ)
        self.seen = b""

    def expect(self, text: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while text.encode() not in self.seen:
            assert time.monotonic() < deadline, f"no {text!r} in {self.seen!r}"
            if select.select([self.fd], [], [], 0.1)[0]:
                self.seen += os.read(self.fd, 4096)

    def type(self, line: str) -> None:
        os.write(self.fd, line.encode() + b"\r")

    def finish(self) -> int:
        try:
            while chunk := os.read(self.fd, 4096):
                self.seen += chunk
        except OSError:  # EIO: the child closed the terminal
            pass
        os.close(self.fd)
        return os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])


def test_passphrase_and_value_typed_on_the_terminal() -> None:
    init = Terminal("store", "init", "--passphrase")
    init.expect("new passphrase for the local store: ")
    init.type("typed pass")
    init.expect("(again): ")
    init.type("typed pass")
    assert init.finish() == 0
    assert b"protected by a passphrase" in init.seen and b"typed pass" not in init.seen

    create = Terminal("secret", "create", "api_key")
    create.expect("value for api_key: ")
    create.type("typed-value")
    create.expect("passphrase for the local store: ")
    create.type("typed pass")
    assert create.finish() == 0
    assert b"typed-value" not in create.seen and b"typed pass" not in create.seen
    store = LocalStore.from_config(load_config(), Passphrases({"SECRETD_PASSPHRASE": "typed pass"}))
    assert store.read("api_key") == (1, b"typed-value")


def test_passphrases_that_differ_are_refused() -> None:
    init = Terminal("store", "init", "--passphrase")
    init.expect("new passphrase for the local store: ")
    init.type("one")
    init.expect("(again): ")
    init.type("two")
    assert init.finish() == 2
    assert b"secretd: the passphrases do not match: type the same passphrase twice" in init.seen
    assert LocalStore.from_config(load_config()).list_secrets() == []
