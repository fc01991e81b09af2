"""`secretd run --secret api_key -- true` against `unshare -m true` and against the same
namespaces with tini as PID 1 (`unshare -mpf --mount-proc tini -- true`).

Usage: python bench/run_sandbox.py [ROUNDS]
Prints medians and ratios; the issue's target is at most 30 ms over `unshare -m true`.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _timing import SECRETD, interleaved, report, scratch_env  # noqa: E402

# What the sandbox does besides the secrets: mount and PID namespaces, a /proc, tini as PID 1.
UNSHARE_PID = ["unshare", "-m", "-p", "-f", "--mount-proc"]


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    with tempfile.TemporaryDirectory(prefix="secretd-bench-") as tmp:
        env = scratch_env(tmp)
        secretd = SECRETD
        commands = {
            "secretd run": ([*secretd, "run", "--secret", "api_key", "--", "true"], env),
            "unshare -m": (["unshare", "-m", "true"], None),
            "unshare -mpf --mount-proc tini": (UNSHARE_PID + ["tini", "--", "true"], None),
            "python -c pass": ([sys.executable, "-c", "pass"], None),
        }
        medians = interleaved(commands, rounds)
    report(f"sandbox run, {rounds} rounds (medians):", medians, "unshare -m")
    overhead = (medians["secretd run"] - medians["unshare -m"]) * 1000
    print(f"  secretd run adds {overhead:.1f} ms over unshare -m (target: <= 30 ms)")


if __name__ == "__main__":
    main()
