#!/usr/bin/env bash
# The integrations' budgets, on SQLite, on a fresh database with $FAULTS demo faults:
# - an Alertmanager payload of 1,000 firing alerts against the same 1,000 events on
#   POST /fault/events (bench/integrations_load.py; alternating, medians; budget: within 2×);
# - PagerDuty single events (each a trigger of a new dedup_key) per second (bench/pagerduty.lua;
#   wrk; budget: at least 5,000/s).
# Appends a section to BENCHMARKS.md.
#
#   bench/integrations.sh
#
# Environment (all optional): FAULTS=100000; ROUNDS=10 payloads of each kind; DURATION=10s,
# THREADS=2, CONNECTIONS=16 for wrk; OUTPUT=BENCHMARKS.md.
# Needs: cargo, curl, python3, wrk (installed with apt-get when missing). Every server it starts
# is stopped when it exits.
set -euo pipefail
cd "$(dirname "$0")/.."

FAULTS="${FAULTS:-100000}"
ROUNDS="${ROUNDS:-10}"
DURATION="${DURATION:-10s}"
THREADS="${THREADS:-2}"
CONNECTIONS="${CONNECTIONS:-16}"
OUTPUT="${OUTPUT:-BENCHMARKS.md}"
RESULTS=bench/results
source bench/common.sh
need_tools python3

log "faultline demo --faults $FAULTS"
URL=$(fresh_database sqlite integrations-bench)
KEY=$("$BIN" demo --faults "$FAULTS" --sites 200 --database-url "$URL" 2>"$RESULTS/integrations-demo.log" | head -n1 | cut -d' ' -f2)
start_server integrations-serve "$URL"

log "Alertmanager payloads against /fault/events, $ROUNDS of each"
PAYLOADS=$(python3 bench/integrations_load.py "$BASE" "$KEY" "$ROUNDS")
log "wrk PagerDuty triggers"
PD=$(KEY="$KEY" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s bench/pagerduty.lua \
    "$BASE/integrations/pagerduty/v2/enqueue" | wrk_row)
log "wrk GET /healthz (the floor)"
FLOOR=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$BASE/healthz" | wrk_row)

AM_MS=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["alertmanager_ms"])' "$PAYLOADS")
EV_MS=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["events_ms"])' "$PAYLOADS")
RATIO=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["ratio"])' "$PAYLOADS")
PD_RPS=$(cut -f1 <<<"$PD")
{
    echo
    echo "## Integrations: $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo "- Command: \`bench/integrations.sh\` (FAULTS=$FAULTS, ROUNDS=$ROUNDS; wrk -t$THREADS -c$CONNECTIONS -d$DURATION)"
    echo "- Commit: $(commit_line); load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    echo "| figure | value | anchor | ratio | budget |"
    echo "| --- | ---: | --- | ---: | --- |"
    echo "| Alertmanager payload of 1,000 firing alerts (median ms) | $AM_MS | the same 1,000 events on \`POST /fault/events\`: $EV_MS ms | $RATIO | ≤ 2 $(python3 -c "print('✓' if $RATIO <= 2 else '✗')") |"
    echo "| PagerDuty triggers, one a request (events/s) | $PD_RPS (p50 $(cut -f2 <<<"$PD") ms, p99 $(cut -f3 <<<"$PD") ms, $(cut -f4 <<<"$PD") errors) | \`GET /healthz\`: $(cut -f1 <<<"$FLOOR")/s | | ≥ 5,000/s $(python3 -c "print('✓' if $PD_RPS >= 5000 else '✗')") |"
} | tee -a "$OUTPUT"
