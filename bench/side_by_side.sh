#!/usr/bin/env bash
# Several builds of faultline, one after another on one database, under the same load: for
# comparing a change with what it replaces, on the same data and in the same minutes.
#
#   bench/side_by_side.sh DATABASE KEY_FILE BINARY...
#
# DATABASE is a SQLite file made by `faultline demo --faults N --database-url sqlite://FILE`,
# or the postgres:// URL of a database that command loaded; KEY_FILE is that command's output
# (its first line's second field is the API key). For each binary in turn: start it on the
# database, then for each request below run wrk -t2 -c16 for WARM (2) seconds and then
# DURATION (5) seconds, and print requests/s and the server's CPU time per request (from /proc,
# user + system); then its peak resident memory (VmHWM) and what of it is anonymous and
# file-backed now. `/fault/random` reads 20,000 faults drawn at random from the database
# (bench/random_fault.lua), the others one fault or the first page again and again. Repeat
# with ROUNDS=N (default 1). Reads only: the database is left as it was (but for the
# migrations a newer binary applies).
#
# INGEST=1: then bench/alertmanager.sh with the same binaries: realistic event ingest and peak
# memory beside Prometheus Alertmanager, on fresh databases of its own (its environment
# variables apply).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 3 ] || { sed -n '2,20p' "$0" >&2; exit 2; }
DATABASE=$1 KEY_FILE=$2
shift 2
WARM="${WARM:-2}" DURATION="${DURATION:-5}" ROUNDS="${ROUNDS:-1}"
RESULTS=bench/results
FAULTLINE_BIN=unused
source bench/common.sh
need_tools jq sqlite3
KEY=$(awk 'NR == 1 { print $2 }' "$KEY_FILE")
case "$DATABASE" in *://*) URL=$DATABASE ;; *) URL="sqlite://$DATABASE" ;; esac
ticks=$(getconf CLK_TCK)
# Ids of 20,000 faults drawn at random, for GET /fault/{random id} (bench/random_fault.lua).
IDS="$RESULTS/side-by-side.ids"
case "$URL" in
    sqlite://*) sqlite3 -readonly "${URL#sqlite://}" "SELECT id FROM faults ORDER BY random() LIMIT 20000" >"$IDS" ;;
    *) psql "$URL" -qAtX -c "SELECT id FROM faults ORDER BY random() LIMIT 20000" >"$IDS" ;;
esac

for round in $(seq 1 "$ROUNDS"); do
    for BIN in "$@"; do
        log "round $round: $BIN"
        start_server side-by-side "$URL"
        pid=${SERVER_PIDS[-1]}
        first=$(curl -fsS -H "Authorization: Bearer $KEY" "$BASE/fault?limit=1")
        id=$(jq -r '.data[0].id' <<<"$first")
        site=$(jq -r '.data[0].site_id' <<<"$first")
        for path in /healthz "/fault/$id" /fault/random /fault "/fault?site=$site&severity=HIGH,CRITICAL"; do
            args=(-t2 -c16 -H "Authorization: Bearer $KEY")
            [ "$path" = /fault/random ] && args+=(-s bench/random_fault.lua)
            IDS="$IDS" KEY="$KEY" wrk "${args[@]}" -d"${WARM}s" "$BASE$path" >/dev/null
            before=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
            out=$(IDS="$IDS" KEY="$KEY" wrk "${args[@]}" -d"${DURATION}s" "$BASE$path")
            after=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
            awk -v path="$path" -v cpu=$((after - before)) -v ticks="$ticks" '
                /requests in/ { n = $1 } /Requests\/sec/ { rps = $2 } /Non-2xx/ { bad = $5 }
                END { printf "%-50s %10.0f req/s %8.1f us CPU/request%s\n", substr(path, 1, 50), rps,
                      cpu * 1e6 / ticks / n, bad ? "  NON-2XX " bad : "" }' <<<"$out"
        done
        awk '$1 ~ /^(VmHWM|RssAnon|RssFile):$/ { printf "%s %.0f MB  ", $1, $2 / 1024 } END { print "" }' \
            "/proc/$pid/status"
        stop_servers
    done
done

if [ "${INGEST:-0}" = 1 ]; then
    bench/alertmanager.sh "$@"
fi
