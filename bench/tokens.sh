#!/usr/bin/env bash
# The access-token benchmark, in one run on SQLite: tokens minted per second, and
# GET /fault/{id} read with an access token against the same read with an API key, both set
# against GET /healthz (the floor). Appends a section to BENCHMARKS.md.
#
#   bench/tokens.sh
#
# Environment (all optional): FAULTS=100000 demo faults; DURATION=10s, THREADS=2,
# CONNECTIONS=16 per wrk run; ROUNDS=3 (key and token reads alternate, medians reported);
# OUTPUT=BENCHMARKS.md.
# Needs: cargo, curl, jq, wrk (installed with apt-get when missing). Every server it starts is
# stopped when it exits.
set -euo pipefail
cd "$(dirname "$0")/.."

FAULTS="${FAULTS:-100000}"
DURATION="${DURATION:-10s}"
THREADS="${THREADS:-2}"
CONNECTIONS="${CONNECTIONS:-16}"
ROUNDS="${ROUNDS:-3}"
OUTPUT="${OUTPUT:-BENCHMARKS.md}"
RESULTS=bench/results
BIN="${CARGO_TARGET_DIR:-target}/release/faultline"
log() { printf '== %s\n' "$*" >&2; }

for tool in curl jq; do
    command -v "$tool" >/dev/null || { echo "$0: $tool is required" >&2; exit 1; }
done
command -v wrk >/dev/null || apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
log "cargo build --release"
cargo build --release -p faultline
mkdir -p "$RESULTS"

SERVER_PID=""
stop_server() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null; SERVER_PID=""; }
trap stop_server EXIT
trap 'exit 130' INT TERM

DB="$RESULTS/tokens-bench.db"
rm -f "$DB" "$DB-wal" "$DB-shm"
log "faultline demo --faults $FAULTS"
KEY=$("$BIN" demo --faults "$FAULTS" --sites 200 --database-url "sqlite://$DB" 2>"$RESULTS/tokens-demo.log" | head -n1 | cut -d' ' -f2)
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"
"$BIN" serve --listen "127.0.0.1:$PORT" --database-url "sqlite://$DB" \
    --rate-limit 100000000 --token-rate-limit 100000000 >"$RESULTS/tokens-serve.out" 2>"$RESULTS/tokens-serve.log" &
SERVER_PID=$!
for _ in $(seq 1 100); do curl -sf "$BASE/healthz" >/dev/null && break; sleep 0.1; done

FAULT_ID=$(curl -sf -H "Authorization: Bearer $KEY" "$BASE/fault?limit=1" | jq -r '.data[0].id')
JWT=$(curl -sf -X POST -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    -d '{"expire_after_minutes": 600}' "$BASE/fault/token" | jq -r .token)
MINT_LUA="$RESULTS/mint.lua"
cat >"$MINT_LUA" <<'LUA'
wrk.method = "POST"
wrk.body = '{"expire_after_minutes": 60}'
wrk.headers["Content-Type"] = "application/json"
LUA

# run NAME CREDENTIAL URL [LUA] -> prints "req/s p50_ms p99_ms non2xx"
run() {
    local args=(-t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -H "Authorization: Bearer $2")
    [ -n "${4:-}" ] && args+=(-s "$4")
    log "wrk $1"
    wrk "${args[@]}" "$3" | awk '
        function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
        /Requests\/sec/ { rps = $2 } / 50%/ { p50 = ms($2) } / 99%/ { p99 = ms($2) } /Non-2xx/ { bad = $4 }
        END { printf "%.0f %.2f %.2f %d\n", rps, p50, p99, bad }'
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

FLOOR1=$(run healthz "$KEY" "$BASE/healthz")
KEY_RUNS=""; TOKEN_RUNS=""
for _ in $(seq 1 "$ROUNDS"); do
    KEY_RUNS+="$(run "GET /fault/{id} with an API key" "$KEY" "$BASE/fault/$FAULT_ID")"$'\n'
    TOKEN_RUNS+="$(run "GET /fault/{id} with an access token" "$JWT" "$BASE/fault/$FAULT_ID")"$'\n'
done
MINT=$(run "POST /fault/token" "$KEY" "$BASE/fault/token" "$MINT_LUA")
FLOOR2=$(run healthz "$KEY" "$BASE/healthz")

FLOOR=$(( ($(cut -d' ' -f1 <<<"$FLOOR1") + $(cut -d' ' -f1 <<<"$FLOOR2")) / 2 ))
KEY_RPS=$(grep -v '^$' <<<"$KEY_RUNS" | cut -d' ' -f1 | median)
TOKEN_RPS=$(grep -v '^$' <<<"$TOKEN_RUNS" | cut -d' ' -f1 | median)
MINT_RPS=$(cut -d' ' -f1 <<<"$MINT")
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f%%", 100 * a / b }'; }
met() { awk -v a="$1" -v b="$2" 'BEGIN { print (a >= b) ? "yes" : "**no**" }'; }

{
    printf '\n## Access tokens: %s\n\n' "$(date -u +%Y-%m-%dT%H:%MZ)"
    printf -- '- Command: `bench/tokens.sh` (FAULTS=%s, wrk -t%s -c%s -d%s, %s alternating rounds of key and token reads; medians)\n' \
        "$FAULTS" "$THREADS" "$CONNECTIONS" "$DURATION" "$ROUNDS"
    printf -- '- Machine: %s cores, %s memory; wrk and the server share them\n' "$(nproc)" "$(free -h | awk '/Mem:/ {print $2}')"
    printf -- '- Commit: %s; SQLite\n\n' "$(git rev-parse --short HEAD)"
    printf '| request | req/s | vs floor | budget | met |\n| --- | ---: | ---: | --- | --- |\n'
    printf '| `GET /healthz` (floor, mean of first and last) | %s | 100%% |  |  |\n' "$FLOOR"
    printf '| `GET /fault/{id}`, API key | %s | %s |  |  |\n' "$KEY_RPS" "$(pct "$KEY_RPS" "$FLOOR")"
    printf '| `GET /fault/{id}`, access token | %s | %s | >= 80%% of the API-key read (%s) | %s |\n' \
        "$TOKEN_RPS" "$(pct "$TOKEN_RPS" "$FLOOR")" "$(pct "$TOKEN_RPS" "$KEY_RPS")" "$(met "$TOKEN_RPS" "$(awk -v k="$KEY_RPS" 'BEGIN { print 0.8 * k }')")"
    printf '| `POST /fault/token` (mint) | %s | %s | >= 2,000/s | %s |\n' "$MINT_RPS" "$(pct "$MINT_RPS" "$FLOOR")" "$(met "$MINT_RPS" 2000)"
} | tee -a "$OUTPUT"
