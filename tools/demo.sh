#!/usr/bin/env bash
# The main job end to end: a secret goes into the encrypted store, then into a command's
# private in-memory /run/secrets, on the host and inside a real container; and the
# warning secretd prints for a secret passed the risky way, with -e.
set -euo pipefail
cd "$(dirname "$0")/.."

demo=$(mktemp -d /tmp/secretd-demo.XXXXXX)
trap 'rm -rf "$demo"' EXIT
export SECRETD_STATE_DIR="$demo/state" SECRETD_RUNTIME_DIR="$demo/run"
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

step "printf 's3cr3t-api-key' | secretd secret create api_key -"
printf 's3cr3t-api-key' | secretd secret create api_key -
step "secretd secret ls"
secretd secret ls
step "secretd secret inspect api_key"
secretd secret inspect api_key

step "secretd run --secret api_key -- sh -c 'ls -l /run/secrets; grep \" /run/secrets \" /proc/self/mounts; cat /run/secrets/api_key'"
secretd run --secret api_key -- sh -c 'ls -l /run/secrets; grep " /run/secrets " /proc/self/mounts; cat /run/secrets/api_key; echo'

step "ls /run/secrets   # on the host: nothing"
ls /run/secrets 2>&1 || true

if [ -f secretd/runtime/oci/runtime.py ] && command -v runc >/dev/null; then
    python3 - "$demo/busybox.tar" <<'PY'
import sys
sys.path.insert(0, ".")
from pathlib import Path
from tests.support import busybox
writer = getattr(busybox, "docker_archive", None)
if writer is None:
    raise SystemExit(0)
writer(Path(sys.argv[1]))
PY
    if [ -f "$demo/busybox.tar" ]; then
        step "secretd image load -i busybox.tar"
        secretd image load -i "$demo/busybox.tar"
        step "secretd run --rm --secret source=api_key,target=api_key,mode=0400 busybox sh -c 'ls -l /run/secrets; cat /run/secrets/api_key'"
        secretd run --rm --secret source=api_key,target=api_key,mode=0400 busybox \
            sh -c 'ls -l /run/secrets; cat /run/secrets/api_key; echo'
    fi
fi

token="ghp_$(printf 'x%.0s' {1..36})"
step "secretd run -e API_KEY=ghp_... -- true   # the risky way: a warning"
env -u CI -u SECRETD_STRICT secretd run -e "API_KEY=$token" -- true
step "secretd run --strict -e API_KEY=ghp_... -- true   # refused before anything starts (also with CI=true)"
secretd run --strict -e "API_KEY=$token" -- true || echo "(exit status $?)"
