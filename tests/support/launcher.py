"""The ``secretd`` command as users get it, for tests that run it as another user or
against a daemon of their own."""

from __future__ import annotations

import sys
from pathlib import Path

from secretd import thin

# What ``tools/setup-host.sh`` compiles from ``secretd/thin.c``: it execs the Python
# launcher beside it (``.venv/libexec/secretd``) for whatever it does not do itself.
COMPILED = Path(sys.executable).with_name("secretd")


def install(target: Path, kind: str = "compiled") -> Path:
    """``secretd`` at ``target``: the compiled client, or (``python``) the Python launcher
    alone (``thin.write_launcher``), which the compiled one hands over to."""
    if kind == "compiled":
        target.symlink_to(COMPILED)
    else:
        thin.write_launcher(str(target))
    return target
