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
source bench/common.sh
need_tools jq

log "faultline demo --faults $FAULTS"
URL=$(fresh_database sqlite tokens-bench)
KEY=$("$BIN" demo --faults "$FAULTS" --sites 200 --database-url "$URL" 2>"$RESULTS/tokens-demo.log" | head -n1 | cut -d' ' -f2)
start_server tokens-serve "$URL" --token-rate-limit 100000000

FAULT_ID=$(curl -sf -H "Authorization: Bearer $KEY" "$BASE/fault?limit=1" | jq -r '.data[0].id')
JWT=$(curl -sf -X POST -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    -d '{"expire_after_minutes": 600}' "$BASE/fault/token" | jq -r .token)
MINT_LUA="$RESULTS/mint.lua"
cat >"$MINT_LUA" <<'LUA'
wrk.method = "POST"
wrk.body = '{"expire_after_minutes": 60}'
wrk.headers["Content-Type"] = "application/json"
LUA

# run NAME CREDENTIAL URL [LUA] -> prints "req/s <tab> p50_ms <tab> p99_ms <tab> errors"
run() {
    local args=(-t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -H "Authorization: Bearer $2")
    [ -n "${4:-}" ] && args+=(-s "$4")
    log "wrk $1"
    wrk "${args[@]}" "$3" | wrk_row
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

FLOOR=$(( ($(cut -f1 <<<"$FLOOR1") + $(cut -f1 <<<"$FLOOR2")) / 2 ))
KEY_RPS=$(grep -v '^$' <<<"$KEY_RUNS" | cut -f1 | median)
TOKEN_RPS=$(grep -v '^$' <<<"$TOKEN_RUNS" | cut -f1 | median)
MINT_RPS=$(cut -f1 <<<"$MINT")
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
