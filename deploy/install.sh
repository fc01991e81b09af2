#!/usr/bin/env bash
# Install secretd's daemon on a systemd host: the `secretd` group, the state and runtime
# directories, the example config (kept if one exists) and the units; then start the
# socket. ROOT=/some/dir stages the files there instead (no group, no systemctl).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=${ROOT:-}
bin=${SECRETD_BIN:-$(command -v secretd || echo /usr/local/bin/secretd)}

if [ -z "$root" ]; then
    [ "$(id -u)" -eq 0 ] || { echo "install.sh: run as root (or set ROOT= to stage)" >&2; exit 1; }
    getent group secretd >/dev/null || groupadd --system secretd
fi
install -d -m 0700 "$root/var/lib/secretd"
install -d -m 0755 "$root/run/secretd" "$root/etc/secretd" "$root/etc/systemd/system"
if [ ! -e "$root/etc/secretd/secretd.toml" ]; then
    install -m 0600 "$here/secretd.toml" "$root/etc/secretd/secretd.toml"
fi
sed "s#/usr/local/bin/secretd#$bin#" "$here/secretd.service" >"$root/etc/systemd/system/secretd.service"
chmod 0644 "$root/etc/systemd/system/secretd.service"
install -m 0644 "$here/secretd.socket" "$root/etc/systemd/system/secretd.socket"

if [ -z "$root" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl enable --now secretd.socket
    echo "install.sh: secretd.socket is listening on /run/secretd/secretd.sock"
else
    echo "install.sh: installed under ${root:-/}; start it with: secretd daemon --config-file $root/etc/secretd/secretd.toml"
fi
echo "install.sh: add users to the 'secretd' group and grant them secrets in [policy] of /etc/secretd/secretd.toml"
