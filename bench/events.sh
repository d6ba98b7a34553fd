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
BIN="${CARGO_TARGET_DIR:-target}/release/faultline"
# batch size and wrk connections: small batches need more requests in flight. Each connection
# has a wrk thread of its own, and so a fleet of its own (bench/events.lua): like real monitoring
# sources, two connections never send events about the same resource at once.
RUNS="1:16 100:4 1000:2"

case "$BACKENDS" in
    sqlite | postgres) ;;
    both) BACKENDS="sqlite postgres" ;;
    *)
        echo "usage: $0 [sqlite|postgres|both]" >&2
        exit 2
        ;;
esac

log() { printf '== %s\n' "$*" >&2; }
command -v curl >/dev/null || { echo "$0: curl is required" >&2; exit 1; }
if ! command -v wrk >/dev/null; then
    log "installing wrk"
    apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
fi
log "cargo build --release"
cargo build --release -p faultline
mkdir -p "$RESULTS"

SERVER_PID=""
stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
}
trap stop_server EXIT
trap 'exit 130' INT TERM
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

for BACKEND in $BACKENDS; do
    case "$BACKEND" in
        sqlite)
            DB="$RESULTS/events-bench.db"
            URL="sqlite://$PWD/$DB"
            rm -f "$DB" "$DB-wal" "$DB-shm"
            ;;
        postgres)
            URL="$PG_ADMIN_URL/faultline_bench"
            PGOPTIONS='-c client_min_messages=warning' psql "$PG_ADMIN_URL/postgres" -qX -v ON_ERROR_STOP=1 \
                -c 'DROP DATABASE IF EXISTS faultline_bench WITH (FORCE)' \
                -c 'CREATE DATABASE faultline_bench' >/dev/null
            ;;
    esac
    log "$BACKEND: $FAULTS demo faults"
    FAULTLINE_LOG=error "$BIN" demo --faults "$FAULTS" --database-url "$URL" >"$RESULTS/$BACKEND-events.demo"
    KEY=$(awk 'NR == 1 { print $2 }' "$RESULTS/$BACKEND-events.demo")
    PORT=$(free_port)
    BASE="http://127.0.0.1:$PORT"
    FAULTLINE_RATE_LIMIT=100000000 FAULTLINE_LOG=warn \
        "$BIN" serve --listen "127.0.0.1:$PORT" --database-url "$URL" \
        >"$RESULTS/$BACKEND-events-serve.out" 2>"$RESULTS/$BACKEND-events-serve.log" &
    SERVER_PID=$!
    for _ in $(seq 1 100); do
        curl -fsS "$BASE/healthz" >/dev/null 2>&1 && break
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$RESULTS/$BACKEND-events-serve.log" >&2; exit 1; }
        sleep 0.2
    done
    TSV="$RESULTS/$BACKEND-events.tsv"
    : >"$TSV"
    for run in $RUNS; do
        batch=${run%%:*} connections=${run##*:}
        out="$RESULTS/$BACKEND-events-$batch.txt"
        log "$BACKEND: batches of $batch, $connections connections, $DURATION"
        BATCH=$batch KEY=$KEY wrk -t"$connections" -c"$connections" -d"$DURATION" --latency \
            -s bench/events.lua "$BASE/fault/events" >"$out"
        awk -v batch="$batch" -v conns="$connections" '
            function ms(v) {
                if (v ~ /us$/) return v / 1000;
                if (v ~ /ms$/) return v + 0;
                if (v ~ /s$/) return v * 1000;
                return v;
            }
            $1 == "50%" { p50 = ms($2) }
            $1 == "99%" { p99 = ms($2) }
            /^Requests\/sec:/ { rps = $2 }
            /Non-2xx or 3xx responses:/ { errors += $NF }
            /Socket errors:/ { errors += $4 + $6 + $8 + $10 }
            END { printf "%s\t%s\t%.0f\t%.0f\t%.2f\t%.2f\t%d\n", batch, conns, rps, rps * batch, p50, p99, errors }
        ' "$out" >>"$TSV"
    done
    OUTCOMES=$(curl -fsS "$BASE/metrics" | awk '/^faultline_ingest_events_total/ { print }' | tr '\n' ' ')
    stop_server
    echo "$OUTCOMES" >"$RESULTS/$BACKEND-events.outcomes"
done

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || commit="$commit (with uncommitted changes)"
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
