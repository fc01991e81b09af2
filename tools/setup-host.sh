#!/usr/bin/env bash
# Install what secretd's demo and tests need on a Debian 12 machine, once: the Debian
# packages for the real components (runc, dockerd, podman, FUSE, busybox for test images)
# and a .venv with secretd and its extras. Safe to run again: it skips what is present.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(python3 python3-venv python3-dev gcc git make util-linux procps iproute2
          runc docker.io podman fuse3 libfuse2 busybox-static uidmap postgresql systemd tini
          strace)

missing=()
for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: missing Debian packages: ${missing[*]} (run as root to install them)" >&2
        exit 1
    fi
    echo "setup: installing ${missing[*]}"
    apt-get update -qq
    # With recommends, as tested: podman needs some of its own (networking, fuse-overlayfs).
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Debian's own python3 (not a per-user build) so that tests can run it as 'nobody'.
PYTHON=/usr/bin/python3
[ -x "$PYTHON" ] || PYTHON=python3
if [ ! -x .venv/bin/python ] || [ pyproject.toml -nt .venv/.installed ]; then
    [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
    .venv/bin/pip install -q --upgrade pip
    # compat: a path entry instead of an import hook (the hook costs ~10 ms per start);
    # setuptools warns about compat mode in a page of text: a known, chosen trade-off
    PYTHONWARNINGS=ignore .venv/bin/pip install -q -e '.[all,dev]' --config-settings editable_mode=compat
    touch .venv/.installed
fi

# The secretd command: a small program (secretd/thin.c) that hands a run to a trusted
# daemon without starting Python, and execs the launcher for everything else: 'python -IS'
# and the thin client (secretd/thin.py), which does the same without loading the CLI
# (pip's script costs ~10 ms more). Then bytecode for secretd and its libraries, so that a
# host with PYTHONDONTWRITEBYTECODE set does not compile them on every start (~200 ms); a
# library file that does not compile is skipped.
mkdir -p .venv/libexec
.venv/bin/python -c 'import sys; from secretd.thin import write_launcher; write_launcher(sys.argv[1])' \
    .venv/libexec/secretd
gcc -O2 -Wall -Wextra -DLAUNCHER="\"$PWD/.venv/libexec/secretd\"" -o .venv/bin/secretd.tmp secretd/thin.c
mv .venv/bin/secretd.tmp .venv/bin/secretd
env -u PYTHONDONTWRITEBYTECODE .venv/bin/python -m compileall -q -j 0 secretd \
    .venv/lib/python3*/site-packages >/dev/null || true

# The sandbox's set-up as a small program (secretd/runtime/spawn.c), started with
# posix_spawn instead of a fork of secretd's own process; without it the sandbox forks.
HELPER=$(.venv/bin/python -c 'from secretd.runtime import spawn; print(spawn.HELPER)')
if [ ! -x "$HELPER" ] || [ secretd/runtime/spawn.c -nt "$HELPER" ]; then
    gcc -O2 -Wall -Wno-format-truncation -o "$HELPER.tmp" secretd/runtime/spawn.c
    mv "$HELPER.tmp" "$HELPER"
fi
