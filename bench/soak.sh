#!/usr/bin/env bash
# Soak: SOAK_MINUTES (default 60) of mixed load at fixed, moderate rates against one
# `faultline serve` (release build) on a fresh SQLite database seeded with demo faults:
# event ingest, fault pages and single faults, heartbeats for a fleet of sites (some of which
# fall silent, so the detector opens and closes outages), and live stream clients held open the
# whole time. Not run in CI: it is meant to show slow leaks and slow drifts, not throughput.
#
#   SOAK_MINUTES=60 bench/soak.sh
#
# Every minute it records the server's resident memory (VmRSS), threads and open files, its CPU,
# the database's size (file + WAL), and the count, errors, p50 and p99 of the requests of each
# kind sent in that minute (bench/soak_load.py). Then it plots them and prints the verdict:
# resident memory growth from minute 10 to the end, budget < 10% (bench/soak_report.py).
#
# Outputs (N = SOAK_MINUTES), in bench/results/ (not committed):
#   soak-N.csv        the per-minute rows, written as they are measured
#   soak-N.md         the same as a markdown table
#   soak-N.json       totals per kind, the rates used, mean CPU
#   soak-N.png        the plot; also copied to SOAK_PNG (default bench/soak.png, committed)
#   soak.md           a section ready to paste into BENCHMARKS.md (history), with a row for
#                     the current table
#   soak-N-serve.log  the server's log
#
# Environment (all optional):
#   SOAK_MINUTES=60        length of the run
#   FAULTLINE_BIN=PATH     the binary to run; without it this checkout is built (cargo, under
#                          `flock /tmp/faultline-build.lock` so as not to race other builds)
#   SOAK_COMMIT=TEXT       the commit the report names (default: this checkout's; set it when
#                          FAULTLINE_BIN was built from another one)
#   SOAK_PNG=bench/soak.png
#   SEED_FAULTS=100000     demo faults loaded before the run (`faultline demo`; 0 for none)
#   Rates (the defaults: about 500 requests/s and 1,600 stream deliveries/s, which kept the
#   server near 15% of one core and the generator near 20% on the 2-core machine of issue 23):
#   INGEST_RATE=10 INGEST_BATCH=20  POST /fault/events requests a second, events in each
#   LIST_RATE=60 GET_RATE=120       GET /fault and GET /fault/{id} a second
#   HB_SITES=2000 HB_PERIOD=10      the heartbeat fleet, and seconds between a site's heartbeats
#                                   (also the server's --heartbeat-interval; 3 misses = offline)
#   STREAM_CLIENTS=8                GET /fault/stream clients held open
#
# Needs python3 (with venv; matplotlib is installed from PyPI into bench/results/soak-venv) and
# curl. The server listens on 127.0.0.1 only and is stopped when the script exits, also on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

MINUTES="${SOAK_MINUTES:-60}"
SEED_FAULTS="${SEED_FAULTS:-100000}"
SOAK_PNG="${SOAK_PNG:-bench/soak.png}"
INGEST_RATE="${INGEST_RATE:-10}"
INGEST_BATCH="${INGEST_BATCH:-20}"
LIST_RATE="${LIST_RATE:-60}"
GET_RATE="${GET_RATE:-120}"
HB_SITES="${HB_SITES:-2000}"
HB_PERIOD="${HB_PERIOD:-10}"
STREAM_CLIENTS="${STREAM_CLIENTS:-8}"
RESULTS=bench/results
NAME="soak-$MINUTES"
source bench/common.sh

[[ "$MINUTES" =~ ^[1-9][0-9]*$ ]] || { echo "$0: SOAK_MINUTES must be a whole number of minutes" >&2; exit 2; }
command -v curl >/dev/null || { echo "$0: curl is required" >&2; exit 1; }
mkdir -p "$RESULTS"
DATE=$(date -u +%Y-%m-%dT%H:%MZ)
COMMIT="${SOAK_COMMIT:-$(commit_line)}"

# ---- the binary and the plotting venv (both before the clock starts) --------------------------
if [ -z "${FAULTLINE_BIN:-}" ]; then
    log "cargo build --release --bin faultline (waiting for /tmp/faultline-build.lock)"
    flock /tmp/faultline-build.lock cargo build --release --bin faultline
fi
[ -x "$BIN" ] || { echo "$0: no binary at $BIN" >&2; exit 1; }
VENV="$RESULTS/soak-venv"
if ! "$VENV/bin/python" -c 'import matplotlib' 2>/dev/null; then
    log "python venv with matplotlib in $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check matplotlib
fi

# ---- a fresh database, seeded, and the server -------------------------------------------------
URL=$(fresh_database sqlite "$NAME")
if [ "$SEED_FAULTS" -gt 0 ]; then
    log "seeding $SEED_FAULTS demo faults"
    FAULTLINE_LOG=error "$BIN" demo --faults "$SEED_FAULTS" --database-url "$URL" \
        >"$RESULTS/$NAME.demo" 2>"$RESULTS/$NAME-demo.log"
    KEY=$(awk 'NR == 1 { print $2 }' "$RESULTS/$NAME.demo")
    DATA="a fresh database with $SEED_FAULTS demo faults (\`faultline demo\`, 200 sites) to start with"
else
    DATA="a fresh, empty database"
fi
# The detector sweeps every HB_PERIOD and calls a site offline after 3 missed heartbeats.
start_server "$NAME-serve" "$URL" --heartbeat-interval "${HB_PERIOD}s" --heartbeat-misses 3
SERVER_PID=${SERVER_PIDS[-1]}
# Without seed data, the first start created a key and printed it.
[ "$SEED_FAULTS" -gt 0 ] || KEY=$(head -n1 "$RESULTS/$NAME-serve.out")
log "faultline serve (pid $SERVER_PID) on $BASE; $MINUTES minutes of load from $(date -u +%H:%MZ)"
log "rates: POST /fault/events ${INGEST_RATE}/s x $INGEST_BATCH events, GET /fault ${LIST_RATE}/s," \
    "GET /fault/{id} ${GET_RATE}/s, POST /heartbeat $HB_SITES sites every ${HB_PERIOD}s, $STREAM_CLIENTS stream clients"

# ---- the load, minute by minute ---------------------------------------------------------------
python3 bench/soak_load.py --base "$BASE" --key "$KEY" --pid "$SERVER_PID" --db "$RESULTS/$NAME.db" \
    --minutes "$MINUTES" --csv "$RESULTS/$NAME.csv" --summary "$RESULTS/$NAME.json" \
    --ingest-rate "$INGEST_RATE" --ingest-batch "$INGEST_BATCH" --list-rate "$LIST_RATE" --get-rate "$GET_RATE" \
    --hb-sites "$HB_SITES" --hb-period "$HB_PERIOD" --stream-clients "$STREAM_CLIENTS"
stop_servers

# ---- the report -------------------------------------------------------------------------------
cpu=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
memory=$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
"$VENV/bin/python" bench/soak_report.py --csv "$RESULTS/$NAME.csv" --summary "$RESULTS/$NAME.json" \
    --table "$RESULTS/$NAME.md" --png "$RESULTS/$NAME.png" "$SOAK_PNG" --section "$RESULTS/soak.md" \
    --command "SOAK_MINUTES=$MINUTES bench/soak.sh" --commit "$COMMIT" --data "$DATA" --plot-path "$SOAK_PNG" \
    --machine "$(nproc) cores ($cpu), $memory; the server and the load generator share them with other work" \
    --date "$DATE"
log "per-minute table $RESULTS/$NAME.md (and .csv), plot $RESULTS/$NAME.png and $SOAK_PNG, section $RESULTS/soak.md"
