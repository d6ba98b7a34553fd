#!/usr/bin/env bash
# Regenerate docs/dashboard.png and docs/dashboard-phone.png: the shared dashboard, opened from
# the share link that `faultline serve --demo` prints, on a fresh demo database in a temporary
# folder, photographed by headless Chromium (which can resolve no host name but loopback).
#
#   scripts/screenshot.sh              # builds faultline --release first
#   FAULTLINE_BIN=path/to/faultline scripts/screenshot.sh
#
# Needs chromium (Debian: apt-get install chromium), curl and python3.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${FAULTLINE_BIN:-}
if [ -z "$bin" ]; then
    cargo build --release -q -p faultline
    bin="${CARGO_TARGET_DIR:-target}/release/faultline"
fi
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$bin" serve --demo --listen "127.0.0.1:$port" --database-url "sqlite://$dir/demo.db" >"$dir/out" 2>"$dir/err" &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$dir"' EXIT

link=""
for _ in $(seq 1 240); do
    link=$(grep -o "http://127.0.0.1:$port/s/[A-Za-z0-9]*" "$dir/err" || true)
    [ -n "$link" ] && curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break
    sleep 0.5
done
if [ -z "$link" ]; then
    cat "$dir/err" >&2
    echo "screenshot: the demo server printed no share link" >&2
    exit 1
fi

shot() {
    chromium --headless=new --no-sandbox --disable-gpu --hide-scrollbars --window-size="$1" \
        --virtual-time-budget=10000 --host-resolver-rules="MAP * ~NOTFOUND, EXCLUDE 127.0.0.1" \
        --screenshot="$2" "$link" 2>/dev/null
    echo "wrote $2"
}
shot 1920,1080 docs/dashboard.png
shot 360,1400 docs/dashboard-phone.png
