#!/usr/bin/env bash
# Outbound webhooks (issue 20). Budgets, to a fast local receiver: >= 2,000 deliveries/s on
# SQLite; a fault reaches the receiver within 1 s p99 of its acknowledgement; with one endpoint
# timing out, the others' p99 does not move by more than 10%.
#
#   bench/webhooks.sh [sqlite|postgres|both]      (default: sqlite)
#
# For each backend, ROUNDS times, on a fresh database with a fresh server
# (--webhook-allowed-hosts loopback, --webhook-timeout 2s) and the generator and receivers of
# crates/faultline-server/examples/webhook_bench.rs (its header says what each mode measures):
#
#   1. throughput: FAULTS faults by POST /fault/events (batches of 1,000), one endpoint:
#      deliveries a second from the first arrival to the last;
#   2. latency: POST /fault at RATE a second for DURATION s, one endpoint: acknowledgement to
#      arrival, p50/p99;
#   3. the same with a second endpoint of the same customer that answers at once: the first
#      endpoint's p99 (the control: every change now makes two messages);
#   4. the same with the second endpoint never answering (each attempt ends at the 2 s
#      timeout): the first endpoint's p99 again. The budget compares 4 with 3, the same work
#      but for the endpoint timing out; the ratio is taken within each round (same server,
#      seconds apart) before its median.
#
# Outputs in bench/results/: webhooks-*.json (one line per run) and the servers' logs; a
# summary table is printed. Environment: ROUNDS=3 FAULTS=20000 RATE=200 DURATION=10,
# FAULTLINE_BIN=PATH (else this checkout is built), WEBHOOK_BENCH_BIN=PATH (else the example is
# built). Loopback only; the servers are stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${ROUNDS:-3}"
FAULTS="${FAULTS:-20000}"
RATE="${RATE:-200}"
DURATION="${DURATION:-10}"
RESULTS=bench/results
source bench/common.sh
select_backends "${1:-sqlite}"

GEN="${WEBHOOK_BENCH_BIN:-${CARGO_TARGET_DIR:-target}/release/examples/webhook_bench}"
if [ -z "${FAULTLINE_BIN:-}" ] || [ -z "${WEBHOOK_BENCH_BIN:-}" ]; then
    log "cargo build --release (waiting for /tmp/faultline-build.lock)"
    flock /tmp/faultline-build.lock cargo build --release -p faultline -p faultline-server --bin faultline --example webhook_bench
fi
mkdir -p "$RESULTS"
rm -f "$RESULTS"/webhooks-*.json

for backend in $BACKENDS; do
    for round in $(seq 1 "$ROUNDS"); do
        url=$(fresh_database "$backend" "webhooks_$backend")
        FAULTLINE_LOG=error "$BIN" demo --faults 100 --database-url "$url" >"$RESULTS/webhooks-$backend.demo" 2>/dev/null
        key=$(awk 'NR == 1 { print $2 }' "$RESULTS/webhooks-$backend.demo")
        start_server "webhooks-$backend" "$url" --webhook-allowed-hosts loopback --webhook-timeout 2s
        log "$backend round $round: throughput ($FAULTS faults)"
        "$GEN" --base "$BASE" --key "$key" --mode throughput --faults "$FAULTS" \
            >>"$RESULTS/webhooks-$backend-throughput.json"
        log "$backend round $round: latency ($RATE/s for ${DURATION}s)"
        "$GEN" --base "$BASE" --key "$key" --mode latency --rate "$RATE" --duration "$DURATION" \
            >>"$RESULTS/webhooks-$backend-latency.json"
        log "$backend round $round: latency beside a second endpoint that answers"
        "$GEN" --base "$BASE" --key "$key" --mode latency --rate "$RATE" --duration "$DURATION" --second other \
            >>"$RESULTS/webhooks-$backend-latency-two.json"
        log "$backend round $round: latency beside an endpoint that times out"
        "$GEN" --base "$BASE" --key "$key" --mode latency --rate "$RATE" --duration "$DURATION" --second hang \
            >>"$RESULTS/webhooks-$backend-latency-slow.json"
        stop_servers
    done
done

python3 - "$RESULTS" $BACKENDS <<'EOF'
import json, statistics, sys
results, backends = sys.argv[1], sys.argv[2:]
def lines(name):
    with open(f"{results}/{name}") as f:
        return [json.loads(l) for l in f if l.strip()]
print("| backend | deliveries/s (median, range) | p50 / p99 ack to arrival, one endpoint (ms) | p99 beside a second endpoint that answers (ms) | p99 beside one that times out (ms) | ratio timing out / answering (median of rounds) | missing |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
for b in backends:
    t = lines(f"webhooks-{b}-throughput.json")
    l = lines(f"webhooks-{b}-latency.json")
    two = lines(f"webhooks-{b}-latency-two.json")
    s = lines(f"webhooks-{b}-latency-slow.json")
    rates = [r["deliveries_per_s"] for r in t]
    ratios = [x["p99_ms"] / y["p99_ms"] for x, y in zip(s, two)]
    missing = sum(r["missing"] for r in t + l + two + s)
    print(f"| {b} | {statistics.median(rates):,.0f} ({min(rates):,.0f}-{max(rates):,.0f}) "
          f"| {statistics.median(r['p50_ms'] for r in l):.1f} / {statistics.median(r['p99_ms'] for r in l):.1f} "
          f"| {statistics.median(r['p99_ms'] for r in two):.1f} | {statistics.median(r['p99_ms'] for r in s):.1f} "
          f"| {statistics.median(ratios):.2f} | {missing} |")
EOF
echo "commit: $(commit_line)"
