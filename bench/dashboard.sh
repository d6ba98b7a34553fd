#!/usr/bin/env bash
# The shared dashboard's benchmark, in one run on SQLite: what the reads of an open dashboard
# page cost the server, with its access token, set against GET /healthz (the floor). The page
# follows GET /fault/stream; without it, it polls GET /fault?recent=true every 3 s with
# If-None-Match (304 while nothing changed). Either way it loads the list in full after a
# change, and reloads the chart (GET /fault/analytics, 48 hours hourly unless the viewer picks
# 30 days or 26 weeks) and the top list (GET /fault/top_faults) at most once a minute. Appends a
# section to BENCHMARKS.md.
#
#   bench/dashboard.sh
#
# Environment (all optional): FAULTS=100000 demo faults; DURATION=10s, THREADS=2,
# CONNECTIONS=16 per wrk run; OUTPUT=BENCHMARKS.md.
# Needs: cargo, curl, jq, wrk (installed with apt-get when missing). Every server it starts is
# stopped when it exits.
set -euo pipefail
cd "$(dirname "$0")/.."

FAULTS="${FAULTS:-100000}"
DURATION="${DURATION:-10s}"
THREADS="${THREADS:-2}"
CONNECTIONS="${CONNECTIONS:-16}"
OUTPUT="${OUTPUT:-BENCHMARKS.md}"
RESULTS=bench/results
source bench/common.sh
need_tools jq

URL=$(fresh_database sqlite dashboard-bench)
log "faultline demo --faults $FAULTS"
KEY=$("$BIN" demo --faults "$FAULTS" --sites 200 --database-url "$URL" 2>"$RESULTS/dashboard-demo.log" | head -n1 | cut -d' ' -f2)
start_server dashboard "$URL" --token-rate-limit 100000000

JWT=$(curl -sf -X POST -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    -d '{"expire_after_minutes": 600, "label": "bench"}' "$BASE/fault/token" | jq -r .token)
LIST="$BASE/fault?recent=true&limit=100"
RECENT=$(curl -sf -H "Authorization: Bearer $KEY" "$BASE/fault/recent" | jq length)
ETAG=$(curl -sf -D - -o /dev/null -H "Authorization: Bearer $JWT" "$LIST" | awk 'tolower($1) == "etag:" { print $2 }' | tr -d '\r')
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $JWT" -H "If-None-Match: $ETAG" "$LIST")" = 304 ]

# run NAME URL [HEADER] -> prints "req/s p50_ms p99_ms errors"
run() {
    local args=(-t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -H "Authorization: Bearer $JWT")
    [ -n "${3:-}" ] && args+=(-H "$3")
    log "wrk $1"
    wrk "${args[@]}" "$2" | wrk_row | tr '\t' ' '
}

FLOOR1=$(run healthz "$BASE/healthz")
POLL=$(run "poll: GET /fault?recent=true, 304" "$LIST" "If-None-Match: $ETAG")
FULL=$(run "GET /fault?recent=true, 200" "$LIST")
CHART=$(run "GET /fault/analytics, hourly" "$BASE/fault/analytics?interval=hour&group_by=severity&tz=Europe/Berlin")
CHART_DAYS=$(run "GET /fault/analytics, daily" "$BASE/fault/analytics?interval=day&group_by=severity&tz=Europe/Berlin")
TOP=$(run "GET /fault/top_faults" "$BASE/fault/top_faults?limit=10")
FLOOR2=$(run healthz "$BASE/healthz")

FLOOR=$(( ($(cut -d' ' -f1 <<<"$FLOOR1") + $(cut -d' ' -f1 <<<"$FLOOR2")) / 2 ))
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f%%", 100 * a / b }'; }
row() {
    local rps p50 p99 bad
    read -r rps p50 p99 bad <<<"$2"
    printf '| %s | %s | %s | %s | %s | %s |\n' "$1" "$rps" "$(pct "$rps" "$FLOOR")" "$p50" "$p99" "$bad"
}
POLL_RPS=$(cut -d' ' -f1 <<<"$POLL")
{
    printf '\n## Shared dashboard: %s\n\n' "$(date -u +%Y-%m-%dT%H:%MZ)"
    printf -- '- Command: `bench/dashboard.sh` (FAULTS=%s, wrk -t%s -c%s -d%s), every read with one access token\n' \
        "$FAULTS" "$THREADS" "$CONNECTIONS" "$DURATION"
    printf -- '- Machine: %s cores, %s memory; wrk and the server share them\n' "$(nproc)" "$(free -h | awk '/Mem:/ {print $2}')"
    printf -- '- Commit: %s; SQLite; the recent view holds %s faults (the page reads them 100 a page)\n\n' \
        "$(commit_line)" "$RECENT"
    printf '| request | req/s | vs floor | p50 ms | p99 ms | errors |\n| --- | ---: | ---: | ---: | ---: | ---: |\n'
    printf '| `GET /healthz` (floor, mean of first and last) | %s | 100%% |  |  |  |\n' "$FLOOR"
    row '`GET /fault?recent=true&limit=100`, `If-None-Match` (the poll, 304)' "$POLL"
    row '`GET /fault?recent=true&limit=100` (a page of the list, 200)' "$FULL"
    row '`GET /fault/analytics?interval=hour&group_by=severity` (the chart: 48 hours, the default)' "$CHART"
    row '`GET /fault/analytics?interval=day&group_by=severity` (the chart: 30 days)' "$CHART_DAYS"
    row '`GET /fault/top_faults?limit=10` (the top list)' "$TOP"
    printf '\nA page that polls (no stream) does so every 3 s: the poll alone would allow about %s polling pages per replica at full load.\n' \
        "$(awk -v r="$POLL_RPS" 'BEGIN { printf "%d", r * 3 }')"
} | tee -a "$OUTPUT"
