#!/usr/bin/env bash
# Analytics benchmark: on $FAULTS demo faults (default 1,000,000, about a year of history), the
# median latency of each analytics answer over a one-year window (11 sequential requests each,
# the first one discarded as warm-up), and the CSV export's rows per second with the server's
# peak resident memory during an export of a tenth of the faults and of all of them. Appends a
# section to BENCHMARKS.md.
#
#   bench/analytics.sh [sqlite|postgres|both]        (default: sqlite)
#
# Environment (all optional): FAULTS=1000000, RUNS=11, PG_ADMIN_URL, OUTPUT=BENCHMARKS.md,
# REUSE=1 to keep the database of the previous run.
set -euo pipefail
cd "$(dirname "$0")/.."

BACKENDS="${1:-sqlite}"
FAULTS="${FAULTS:-1000000}"
RUNS="${RUNS:-11}"
PG_ADMIN_URL="${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432}"
OUTPUT="${OUTPUT:-BENCHMARKS.md}"
RESULTS=bench/results
source bench/common.sh
select_backends "$BACKENDS"
need_tools

# median_ms PATH [ACCEPT]: the median time_total of $RUNS requests, in ms, after one warm-up.
median_ms() {
    local path="$1" accept="${2:-application/json}"
    curl -fsS -o /dev/null -H "Authorization: Bearer $KEY" -H "Accept: $accept" "$BASE$path"
    for _ in $(seq 1 "$RUNS"); do
        curl -fsS -o /dev/null -w '%{time_total}\n' -H "Authorization: Bearer $KEY" -H "Accept: $accept" "$BASE$path"
    done | sort -n | awk '{ v[NR] = $1 } END { printf "%.1f", v[int((NR + 1) / 2)] * 1000 }'
}

# export_run PATH: "rows rows/s peak_rss_mib" of one CSV export, sampling the server's RSS.
export_run() {
    local path="$1" sampler peak_file="$RESULTS/rss.peak"
    echo 0 >"$peak_file"
    local pid=${SERVER_PIDS[-1]}
    ( peak=0; while kill -0 "$pid" 2>/dev/null; do
        rss=$(awk '/VmRSS/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)
        [ "${rss:-0}" -gt "$peak" ] && { peak=$rss; echo "$peak" >"$peak_file"; }
        sleep 0.05
    done ) &
    sampler=$!
    local out="$RESULTS/export.csv"
    local seconds
    seconds=$(curl -fsS -o "$out" -w '%{time_total}' -H "Authorization: Bearer $KEY" -H "Accept: text/csv" "$BASE$path")
    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
    local rows=$(( $(python3 -c 'import csv,sys; print(sum(1 for _ in csv.reader(open(sys.argv[1], newline=""))))' "$out") - 1 ))
    awk -v r="$rows" -v s="$seconds" -v p="$(cat "$peak_file")" 'BEGIN { printf "%d\t%.0f\t%.1f", r, r / s, p / 1024 }'
    rm -f "$out"
}

for BACKEND in $BACKENDS; do
    case "$BACKEND" in
        sqlite) URL="sqlite://$PWD/$RESULTS/analytics-bench.db" ;;
        postgres) URL="$PG_ADMIN_URL/faultline_bench" ;;
    esac
    KEY_FILE="$RESULTS/$BACKEND-analytics.demo"
    if [ "${REUSE:-0}" = 1 ] && [ -s "$KEY_FILE" ]; then
        log "$BACKEND: REUSE=1: keeping the previous database"
    else
        log "$BACKEND: $FAULTS demo faults"
        URL=$(fresh_database "$BACKEND" "$([ "$BACKEND" = sqlite ] && echo analytics-bench || echo faultline_bench)")
        FAULTLINE_LOG=error "$BIN" demo --faults "$FAULTS" --database-url "$URL" >"$KEY_FILE"
    fi
    KEY=$(awk 'NR == 1 { print $2 }' "$KEY_FILE")
    FAULTLINE_LOG="warn,faultline_store::sqlite::analytics_index=info" start_server "$BACKEND-analytics-serve" "$URL"
    # On SQLite the first analytics request loads the customer's analytics index in the
    # background (SQL answers meanwhile): wait for it, so that the medians are the index's.
    LOADED="$RESULTS/$BACKEND-analytics-serve.log"
    if [ "$BACKEND" = sqlite ] && grep -q "analytics index loaded" "$BIN"; then
        curl -fsS -o /dev/null -H "Authorization: Bearer $KEY" "$BASE/fault/top_faults"
        for _ in $(seq 1 240); do grep -q "analytics index loaded" "$LOADED" && break; sleep 0.5; done
        grep -o 'faults=[0-9]* elapsed_ms=[0-9]*' "$LOADED" | sed 's/^/index loaded: /' >"$RESULTS/$BACKEND-index.txt" || true
    else
        : >"$RESULTS/$BACKEND-index.txt"
    fi
    YEAR="from=$(date -u -d '-365 days' +%Y-%m-%dT%H:%M:%SZ)"
    SITE=$(curl -fsS -H "Authorization: Bearer $KEY" "$BASE/fault?limit=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["site_id"])')
    TSV="$RESULTS/$BACKEND-analytics.tsv"
    : >"$TSV"
    for op in \
        "/fault/analytics?$YEAR&interval=day" \
        "/fault/analytics?$YEAR&interval=week&group_by=severity&tz=Europe/Berlin" \
        "/fault/analytics?$YEAR&interval=day&group_by=site" \
        "/fault/analytics?$YEAR&interval=day&site=$SITE" \
        "/fault/analytics?$YEAR&interval=day&q=tunnel" \
        "/fault/analytics?$YEAR&interval=hour&group_by=resource" \
        "/fault/sla?$YEAR" \
        "/fault/sla?$YEAR&hours=mon-fri%2008:00-17:00&tz=Europe/Berlin" \
        "/fault/top_faults?days=90" \
        "/fault/recent"; do
        log "$BACKEND: $op"
        printf '%s\t%s\n' "$op" "$(median_ms "$op")" >>"$TSV"
    done
    log "$BACKEND: exports"
    SMALL=$(export_run "/fault?site=$SITE")
    ALL=$(export_run "/fault")
    stop_servers
    printf '%s\n%s\n' "$SMALL" "$ALL" >"$RESULTS/$BACKEND-export.tsv"
done

commit=$(commit_line)
{
    printf '\n## Analytics and exports: %s\n\n' "$(date -u +%Y-%m-%dT%H:%MZ)"
    printf -- '- Command: `bench/analytics.sh %s` (FAULTS=%s, median of %s sequential requests after a warm-up)\n' "${1:-sqlite}" "$FAULTS" "$RUNS"
    printf -- '- Machine: %s cores; load average at the end %s\n' "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
    printf -- '- Commit: %s\n' "$commit"
    printf -- '- Budgets: every analytics answer over a one-year window within 250 ms median on SQLite; the export at >= 200,000 rows/s with memory that does not grow with the row count\n'
    for BACKEND in $BACKENDS; do
        printf '\n### %s\n\n| operation (one-year window) | median ms |\n| --- | ---: |\n' "$BACKEND"
        awk -F'\t' '{ printf "| `%s` | %s |\n", $1, $2 }' "$RESULTS/$BACKEND-analytics.tsv" | sed -E 's/from=[0-9TZ:-]+/from=<1 year ago>/'
        [ -s "$RESULTS/$BACKEND-index.txt" ] && printf '\nAnalytics index (before the runs): %s\n' "$(cat "$RESULTS/$BACKEND-index.txt")"
        printf '\n| CSV export | rows | rows/s | peak server RSS MiB |\n| --- | ---: | ---: | ---: |\n'
        awk -F'\t' 'NR == 1 { n = "one site" } NR == 2 { n = "everything" } { printf "| %s | %s | %s | %s |\n", n, $1, $2, $3 }' "$RESULTS/$BACKEND-export.tsv"
    done
} | tee -a "$OUTPUT"
