#!/usr/bin/env bash
# Heartbeats and offline detection: `POST /heartbeat` accepted per second in batches of 1, 100
# and 1,000 over a fleet of $SITES sites (bench/heartbeats.lua), the detector's sweep time over
# that fleet while every site is healthy, and the sweep that finds the whole fleet offline at
# once. On SQLite and on PostgreSQL, each on a fresh database. Appends a section to
# BENCHMARKS.md.
#
#   bench/heartbeats.sh [sqlite|postgres|both] [outage]        (default: both)
#
# With `outage`, only the mass outage, at several fleet sizes: each fleet reports once, falls
# silent, and a restarted server's first sweep finds every site offline and opens its outage;
# its time is the sweep's (from its start to the commit of the last outage), as the detector
# logs it. ROUNDS rounds of every size, medians reported. With BASELINE_BIN=PATH each round runs
# that build too, just before this one, for a side-by-side comparison.
#
# Environment (all optional): SITES=100000, DURATION=10s, OUTPUT=BENCHMARKS.md,
# PG_ADMIN_URL=postgres://postgres@127.0.0.1:5432 (where faultline_bench_hb is recreated);
# for `outage`: OUTAGE_SITES="25000 50000 100000", ROUNDS=3, BASELINE_BIN.
set -euo pipefail
cd "$(dirname "$0")/.."

BACKENDS="${1:-both}"
MODE="${2:-all}"
case "$MODE" in
    all | outage) ;;
    *)
        echo "usage: $0 [sqlite|postgres|both] [outage]" >&2
        exit 2
        ;;
esac
SITES="${SITES:-100000}"
DURATION="${DURATION:-10s}"
OUTPUT="${OUTPUT:-BENCHMARKS.md}"
OUTAGE_SITES="${OUTAGE_SITES:-25000 50000 100000}"
ROUNDS="${ROUNDS:-3}"
RESULTS=bench/results
# batch size : wrk connections (one thread each, each with its own slice of the fleet).
RUNS="1:16 100:4 1000:2"
# The detector's policy for the sweeps that find a silent fleet: 1 s, 5 misses.
MISSES=5
source bench/common.sh
select_backends "$BACKENDS"
need_tools

# report_fleet N KEY: every site of a fleet of N (site_000000..), once, in batches of 1,000.
report_fleet() {
    local n=$1 key=$2 start
    for ((start = 0; start < n; start += 1000)); do
        awk -v s="$start" -v e="$((start + 1000 < n ? start + 1000 : n))" 'BEGIN {
            printf "{\"heartbeats\":["
            for (i = s; i < e; i++) printf "%s{\"site_id\":\"site_%06d\",\"name\":\"Branch %d\"}", (i > s ? "," : ""), i, i
            printf "]}"
        }' | curl -fsS --max-time 60 -X POST -H 'Content-Type: application/json' -H "Authorization: Bearer $key" \
            --data-binary @- "$BASE/heartbeat" >/dev/null
    done
}

# offline_sweep NAME URL: waits until every site is past the cutoff, starts a server whose
# first sweep finds them all, and prints "SITES MS" from its log line (empty if none within 300 s).
offline_sweep() {
    local name=$1 url=$2 line
    sleep "$((MISSES + 1))"
    FAULTLINE_LOG=info start_server "$name" "$url" --heartbeat-interval 1s --heartbeat-misses "$MISSES"
    for _ in $(seq 1 600); do
        grep -q "went offline" "$RESULTS/$name.log" && break
        sleep 0.5
    done
    line=$(grep -m1 "went offline" "$RESULTS/$name.log" || true)
    stop_servers
    [ -n "$line" ] && echo "$line" | sed -E 's/.*sites=([0-9]+).*took_ms=([0-9]+).*/\1 \2/'
    return 0
}

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

if [ "$MODE" = outage ]; then
    BUILDS="this"
    [ -n "${BASELINE_BIN:-}" ] && BUILDS="baseline this"
    TSV="$RESULTS/outage.tsv"
    : >"$TSV"
    THIS_BIN=$BIN
    for round in $(seq 1 "$ROUNDS"); do
        for BACKEND in $BACKENDS; do
            for n in $OUTAGE_SITES; do
                for build in $BUILDS; do
                    BIN=$THIS_BIN
                    [ "$build" = baseline ] && BIN=$BASELINE_BIN
                    log "round $round: $BACKEND, $n sites, $build build"
                    URL=$(fresh_database "$BACKEND" faultline_bench_hb)
                    start_server "$BACKEND-outage-fill" "$URL" --heartbeat-interval 1s --heartbeat-misses 1000
                    report_fleet "$n" "$(head -n1 "$RESULTS/$BACKEND-outage-fill.out")"
                    stop_servers
                    read -r found ms < <(offline_sweep "$BACKEND-outage" "$URL") || true
                    [ "${found:-0}" = "$n" ] || { echo "$0: the sweep found ${found:-no} sites of $n" >&2; exit 1; }
                    printf '%s\t%s\t%s\t%s\n' "$BACKEND" "$n" "$build" "$ms" >>"$TSV"
                done
            done
        done
    done
    BIN=$THIS_BIN
    {
        printf '\n## Mass outage: %s\n\n' "$(date -u +%Y-%m-%dT%H:%MZ)"
        printf -- '- Command: `bench/heartbeats.sh %s outage` (OUTAGE_SITES="%s", ROUNDS=%s%s)\n' \
            "${1:-both}" "$OUTAGE_SITES" "$ROUNDS" "${BASELINE_BIN:+, BASELINE_BIN=$BASELINE_BIN}"
        printf -- '- Machine: %s cores; load average at the end %s\n' "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
        printf -- '- Commit: %s\n' "$(commit_line)"
        printf -- '- Each fleet reports once, falls silent, and one sweep (1 s interval, %s misses) opens an outage for every site; its time, from its start to the commit of the last outage, as the detector logs it\n' "$MISSES"
        printf '\n| backend | sites | build | median ms | runs ms |\n| --- | ---: | --- | ---: | --- |\n'
        for BACKEND in $BACKENDS; do
            for n in $OUTAGE_SITES; do
                for build in $BUILDS; do
                    runs=$(awk -F'\t' -v b="$BACKEND" -v n="$n" -v k="$build" '$1 == b && $2 == n && $3 == k { print $4 }' "$TSV")
                    printf '| %s | %s | %s | **%s** | %s |\n' "$BACKEND" "$n" "$build" \
                        "$(echo "$runs" | median)" "$(echo "$runs" | paste -sd' ')"
                done
            done
        done
    } | tee -a "$OUTPUT"
    exit 0
fi

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
    offline=$(offline_sweep "$BACKEND-hb-offline" "$URL" | sed -E 's/([0-9]+) ([0-9]+)/\1 sites in \2 ms/')
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
