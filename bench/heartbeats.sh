#!/usr/bin/env bash
# Heartbeats and offline detection: `POST /heartbeat` accepted per second in batches of 1, 100
# and 1,000 over a fleet of $SITES sites (bench/heartbeats.lua), the detector's sweep time over
# that fleet while every site is healthy, and the sweep that finds the whole fleet offline at
# once. On SQLite and on PostgreSQL, each on a fresh database. Appends a section to
# BENCHMARKS.md.
#
#   bench/heartbeats.sh [sqlite|postgres|both]        (default: both)
#
# Environment (all optional): SITES=100000, DURATION=10s, OUTPUT=BENCHMARKS.md,
# PG_ADMIN_URL=postgres://postgres@127.0.0.1:5432 (where faultline_bench_hb is recreated).
set -euo pipefail
cd "$(dirname "$0")/.."

BACKENDS="${1:-both}"
SITES="${SITES:-100000}"
DURATION="${DURATION:-10s}"
OUTPUT="${OUTPUT:-BENCHMARKS.md}"
RESULTS=bench/results
# batch size : wrk connections (one thread each, each with its own slice of the fleet).
RUNS="1:16 100:4 1000:2"
source bench/common.sh
select_backends "$BACKENDS"
need_tools

for BACKEND in $BACKENDS; do
    URL=$(fresh_database "$BACKEND" faultline_bench_hb)
    # 1,000 misses at 1 s: nobody goes offline during the load, and the detector sweeps every
    # second all the same.
    start_server "$BACKEND-hb" "$URL" --heartbeat-interval 1s --heartbeat-misses 1000
    KEY=$(head -n1 "$RESULTS/$BACKEND-hb.out")
    TSV="$RESULTS/$BACKEND-hb.tsv"
    : >"$TSV"
    for run in $RUNS; do
        batch=${run%%:*} connections=${run##*:}
        out="$RESULTS/$BACKEND-hb-$batch.txt"
        log "$BACKEND: heartbeats in batches of $batch, $connections connections, $DURATION"
        BATCH=$batch THREADS=$connections SITES=$SITES KEY=$KEY \
            wrk -t"$connections" -c"$connections" -d"$DURATION" --latency -s bench/heartbeats.lua \
            "$BASE/heartbeat" >"$out"
        IFS=$'\t' read -r rps p50 p99 errors < <(wrk_row "$out")
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$batch" "$connections" "$rps" "$((rps * batch))" "$p50" "$p99" "$errors" >>"$TSV"
    done
    # Every site of the fleet, once more, so that all of them exist for the sweeps below.
    BATCH=1000 THREADS=1 SITES=$SITES KEY=$KEY wrk -t1 -c1 -d3s -s bench/heartbeats.lua "$BASE/heartbeat" >/dev/null
    log "$BACKEND: detector sweeps over a healthy fleet, 10 s"
    sum0=$(metric "$BASE" faultline_detector_sweep_seconds_sum)
    count0=$(metric "$BASE" faultline_detector_sweep_seconds_count)
    sleep 10
    sum1=$(metric "$BASE" faultline_detector_sweep_seconds_sum)
    count1=$(metric "$BASE" faultline_detector_sweep_seconds_count)
    healthy=$(awk -v s0="$sum0" -v s1="$sum1" -v c0="$count0" -v c1="$count1" \
        'BEGIN { if (c1 > c0) printf "%.2f ms mean over %d sweeps", (s1 - s0) * 1000 / (c1 - c0), c1 - c0; else print "no sweep" }')
    stop_servers
    log "$BACKEND: the whole fleet silent: one sweep finds every site offline"
    FAULTLINE_LOG=info start_server "$BACKEND-hb-offline" "$URL" --heartbeat-interval 1s --heartbeat-misses 5
    for _ in $(seq 1 600); do
        grep -q "went offline" "$RESULTS/$BACKEND-hb-offline.log" && break
        sleep 0.5
    done
    offline=$(grep -m1 "went offline" "$RESULTS/$BACKEND-hb-offline.log" | sed -E 's/.*sites=([0-9]+).*took_ms=([0-9]+).*/\1 sites in \2 ms/')
    stop_servers
    printf '%s\n%s\n' "$healthy" "${offline:-not seen within 300 s}" >"$RESULTS/$BACKEND-hb.sweeps"
done

{
    printf '\n## Heartbeats and offline detection: %s\n\n' "$(date -u +%Y-%m-%dT%H:%MZ)"
    printf -- '- Command: `bench/heartbeats.sh %s` (SITES=%s, wrk -d%s, one thread per connection, bench/heartbeats.lua)\n' \
        "${1:-both}" "$SITES" "$DURATION"
    printf -- '- Machine: %s cores, wrk and the server share them; load average at the end %s\n' \
        "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
    printf -- '- Commit: %s\n' "$(commit_line)"
    printf -- '- Budget: >= 20,000 heartbeats/s accepted on SQLite; a detector sweep of 100,000 sites under 1 s\n'
    for BACKEND in $BACKENDS; do
        printf '\n### %s\n\n' "$BACKEND"
        printf '| batch | connections | requests/s | heartbeats/s | p50 ms | p99 ms | errors |\n'
        printf '| ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n'
        awk -F'\t' '{ printf "| %s | %s | %s | **%s** | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7 }' \
            "$RESULTS/$BACKEND-hb.tsv"
        { read -r healthy; read -r offline; } <"$RESULTS/$BACKEND-hb.sweeps"
        printf '\n- Detector sweep over the %s-site fleet, all healthy: **%s**\n' "$SITES" "$healthy"
        printf -- '- The sweep that finds the whole fleet offline (an outage opened for each site): **%s**\n' "$offline"
    done
} | tee -a "$OUTPUT"
