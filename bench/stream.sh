#!/usr/bin/env bash
# The live stream: events delivered per second to many `GET /fault/stream` clients while a
# producer posts trigger events, and the latency from the event log to each client
# (bench/stream_fanout.py). On SQLite one process serves both; on PostgreSQL the clients are on
# replica B and the producer on replica A, so the latency is replica to replica. Appends a
# section to BENCHMARKS.md.
#
#   bench/stream.sh [sqlite|postgres|both]        (default: both)
#
# Environment (all optional): SECONDS_PER_RUN=10, OUTPUT=BENCHMARKS.md,
# PG_ADMIN_URL=postgres://postgres@127.0.0.1:5432 (where faultline_bench_stream is recreated).
set -euo pipefail
cd "$(dirname "$0")/.."

BACKENDS="${1:-both}"
SECONDS_PER_RUN="${SECONDS_PER_RUN:-10}"
OUTPUT="${OUTPUT:-BENCHMARKS.md}"
RESULTS=bench/results
# clients : events produced per second. 1,000 clients is the issue's fan-out; 10 clients at a
# higher rate shows the latency when the clients themselves are not the bottleneck.
RUNS="1000:100 10:500"
source bench/common.sh
select_backends "$BACKENDS"
need_tools
ulimit -n 20000 2>/dev/null || true

for BACKEND in $BACKENDS; do
    URL=$(fresh_database "$BACKEND" faultline_bench_stream)
    SHARED=(--public-url http://faults.bench.test)
    start_server "$BACKEND-stream-a" "$URL" "${SHARED[@]}"
    KEY=$(head -n1 "$RESULTS/$BACKEND-stream-a.out")
    POST=$BASE
    STREAM=$BASE
    if [ "$BACKEND" = postgres ]; then
        start_server "$BACKEND-stream-b" "$URL" "${SHARED[@]}"
        STREAM=$BASE
    fi
    : >"$RESULTS/$BACKEND-stream.jsonl"
    for run in $RUNS; do
        clients=${run%%:*} rate=${run##*:}
        log "$BACKEND: $clients stream clients, $rate events/s for $SECONDS_PER_RUN s"
        python3 bench/stream_fanout.py --stream "$STREAM" --post "$POST" --key "$KEY" \
            --clients "$clients" --rate "$rate" --batch 10 --seconds "$SECONDS_PER_RUN" \
            >>"$RESULTS/$BACKEND-stream.jsonl"
    done
    stop_servers
done

{
    printf '\n## Live stream: %s\n\n' "$(date -u +%Y-%m-%dT%H:%MZ)"
    printf -- '- Command: `bench/stream.sh %s` (%s s a run, bench/stream_fanout.py: Python asyncio clients, batches of 10 triggers)\n' \
        "${1:-both}" "$SECONDS_PER_RUN"
    printf -- '- Machine: %s cores shared by the clients, the producer and the server(s); load average at the end %s\n' \
        "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
    printf -- '- Commit: %s\n' "$(commit_line)"
    printf -- '- Budget: an event reaches stream clients on another replica within 1 s (p99)\n'
    printf -- '- Latency: from the event'"'"'s `occurred_at` (its log time) to its arrival at a client, sampled\n'
    for BACKEND in $BACKENDS; do
        where="one process"
        [ "$BACKEND" = postgres ] && where="producer on replica A, clients on replica B"
        printf '\n### %s (%s)\n\n' "$BACKEND" "$where"
        printf '| clients | events/s produced | delivered / expected | deliveries/s | p50 ms | p99 ms | max ms | resyncs |\n'
        printf '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n'
        python3 -c '
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    r["rate"] = round(r["produced"] / r["produce_seconds"])
    print("| {clients} | {rate} | {delivered} / {expected} | **{deliveries_per_s}** | {latency_ms_p50} | "
          "**{latency_ms_p99}** | {latency_ms_max} | {resyncs} |".format(**r))
' "$RESULTS/$BACKEND-stream.jsonl"
    done
} | tee -a "$OUTPUT"
