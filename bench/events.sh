#!/usr/bin/env bash
# Event ingest benchmark: `POST /fault/events` in batches of 1, 100 and 1,000 events, a realistic
# mix (70% triggers of which half deduplicate, 30% resolves; bench/events.lua), on SQLite and on
# PostgreSQL, each on a fresh database holding $FAULTS demo faults first. Appends a section to
# BENCHMARKS.md with events per second and the p50/p99 latency of a request.
#
#   bench/events.sh [sqlite|postgres|both]        (default: both)
#
# Environment (all optional):
#   FAULTS=100000         demo faults loaded before the runs (the history ingest writes beside)
#   DURATION=10s          per wrk run
#   PG_ADMIN_URL=postgres://postgres@127.0.0.1:5432   where `faultline_bench` is dropped and created
#   OUTPUT=BENCHMARKS.md  where the results section is appended
#
# Needs: cargo, curl, wrk (installed with apt-get when missing), psql for PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."

BACKENDS="${1:-both}"
FAULTS="${FAULTS:-100000}"
DURATION="${DURATION:-10s}"
PG_ADMIN_URL="${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432}"
OUTPUT="${OUTPUT:-BENCHMARKS.md}"
RESULTS=bench/results
# batch size and wrk connections: small batches need more requests in flight. Each connection
# has a wrk thread of its own, and so a fleet of its own (bench/events.lua): like real monitoring
# sources, two connections never send events about the same resource at once. Batches of 1,000
# run with 4 and with 8 sources: with 4, the single SQLite writer waits about 30% of the time
# while the next batches are parsed (clients get their answers together, at a group's commit).
RUNS="${RUNS:-1:16 100:4 1000:4 1000:8}"


source bench/common.sh
select_backends "$BACKENDS"
need_tools

for BACKEND in $BACKENDS; do
    URL=$(fresh_database "$BACKEND" "$([ "$BACKEND" = sqlite ] && echo events-bench || echo faultline_bench)")
    log "$BACKEND: $FAULTS demo faults"
    FAULTLINE_LOG=error "$BIN" demo --faults "$FAULTS" --database-url "$URL" >"$RESULTS/$BACKEND-events.demo"
    KEY=$(awk 'NR == 1 { print $2 }' "$RESULTS/$BACKEND-events.demo")
    start_server "$BACKEND-events-serve" "$URL"
    TSV="$RESULTS/$BACKEND-events.tsv"
    : >"$TSV"
    for run in $RUNS; do
        batch=${run%%:*} connections=${run##*:}
        out="$RESULTS/$BACKEND-events-$batch.txt"
        log "$BACKEND: batches of $batch, $connections connections, $DURATION"
        # The kernel's write-back of what the previous phase wrote is not this run's cost.
        sync
        BATCH=$batch KEY=$KEY wrk -t"$connections" -c"$connections" -d"$DURATION" --timeout 10s --latency \
            -s bench/events.lua "$BASE/fault/events" >"$out"
        IFS=$'\t' read -r rps p50 p99 errors < <(wrk_row "$out")
        # events/s from wrk's exact request rate (the table's requests/s is rounded)
        events=$(awk -v batch="$batch" '/^Requests\/sec:/ { printf "%.0f", $2 * batch }' "$out")
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$batch" "$connections" "$rps" "$events" "$p50" "$p99" "$errors" >>"$TSV"
    done
    OUTCOMES=$(curl -fsS "$BASE/metrics" | awk '/^faultline_ingest_events_total/ { print }' | tr '\n' ' ')
    stop_servers
    echo "$OUTCOMES" >"$RESULTS/$BACKEND-events.outcomes"
done

commit=$(commit_line)
{
    printf '\n## Event ingest: %s\n\n' "$(date -u +%Y-%m-%dT%H:%MZ)"
    printf -- '- Command: `bench/events.sh %s` (FAULTS=%s preloaded, wrk -d%s, one thread per connection, bench/events.lua)\n' \
        "${1:-both}" "$FAULTS" "$DURATION"
    printf -- '- Machine: %s cores, wrk and the server share them; load average at the end %s\n' \
        "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
    printf -- '- Commit: %s\n' "$commit"
    printf -- '- Budget: batches of 1,000 at >= 20,000 events/s on SQLite, >= 10,000/s on PostgreSQL\n'
    for BACKEND in $BACKENDS; do
        printf '\n### %s\n\n' "$BACKEND"
        printf '| batch | connections | requests/s | events/s | p50 ms | p99 ms | errors |\n'
        printf '| ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n'
        awk -F'\t' '{ printf "| %s | %s | %s | **%s** | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7 }' \
            "$RESULTS/$BACKEND-events.tsv"
        outcomes=$(cat "$RESULTS/$BACKEND-events.outcomes")
        [ -n "$outcomes" ] && printf '\nOutcomes counted by the server: `%s`\n' "$outcomes"
    done
} | tee -a "$OUTPUT"
