#!/usr/bin/env bash
# Load shedding (issue 23): what the service does at twice the load it can sustain. Budget:
# above capacity it sheds load instead of queueing without bound; the p99 of the requests it
# admits stays within 2x of the unloaded p99; memory stays bounded; health and metrics answer
# throughout.
#
#   bench/overload.sh
#
# On a SQLite database of FAULTS demo faults (`faultline demo`, copied afresh for every server),
# with the load generator `crates/faultline-server/examples/overload.rs` (open loop, latency by
# status; its header documents the request mix and what it measures):
#
#   1. Capacity X: the generator in closed loop with as many workers as the shedding server
#      admits at once (its --max-concurrent-requests, 32 per core by default), so nothing is
#      shed and the server is kept saturated: X = the 2xx answers a second, WARMUP s discarded
#      first. The same client and the same mix as the open-loop runs.
#   2. Unloaded: open loop at 0.5 X for DURATION s: the p99 of the 2xx answers.
#   3. Doubled: open loop at 2 X for DURATION s on the same server (default shedding): the p99
#      of the admitted (2xx) requests, the share shed (503 `overloaded`), the server's VmHWM and
#      VmRSS (/proc/PID/status) before and after, and faultline_requests_shed_total.
#   4. The same two runs on a server with shedding effectively off
#      (--max-concurrent-requests 1000000): what queueing does. Bounded all the same: the
#      schedule lasts DURATION s, the generator keeps at most MAX_IN_FLIGHT requests
#      outstanding (the ones due past that are counted as "skipped": they could not be sent),
#      and answers still missing GRACE s after the schedule are counted as timeouts.
#   Throughout every open-loop run, GET /healthz and GET /metrics every 100 ms (max latency,
#   failures). Steps 2-4 are repeated ROUNDS times, each on fresh servers, the two servers'
#   order alternating; figures are medians over the rounds, and the ratio is taken within each
#   round (same server, seconds apart) before its median.
#
# The server and the generator run on separate CPUs (taskset; PIN=1, the default on 2 cores or
# more: the server on the first half, the generator on the rest). Sharing them, the generator's
# extra work at 2 X would take CPU from the server, and the test would measure that rather than
# shedding. The server's default limit follows the cores it is given (32 each).
#
# Outputs, in bench/results/ (not committed): overload-*.json (one generator result per run, and
# beside each, *.server.json: the server's VmHWM/VmRSS, CPU time and shed counter before and
# after it, and the CPU time all processes used on the server's CPUs meanwhile), overload-gen.log, the servers' logs, and overload.md: a section ready to paste into
# BENCHMARKS.md (history), with a row for the current table (bench/overload_report.py writes it;
# it is also printed).
#
# Environment (all optional):
#   DURATION=15           seconds of each open-loop run;  CAPACITY_DURATION=10, WARMUP=3
#   ROUNDS=3              repetitions of steps 2-4
#   FAULTS=100000         demo faults loaded first
#   LIMIT=                the shedding server's --max-concurrent-requests (default: its default)
#   CONCURRENCY=          workers of the capacity run (default: LIMIT, else 32 per server core)
#   CAPACITY=             requests/s to take as X instead of the measured capacity (which is still
#                         measured and reported): to offer the same rates as an earlier run
#   MAX_IN_FLIGHT=2000    the generator's cap on outstanding requests;  GRACE=10
#   MIX=45,45,10          percent of GET /fault?limit=50 pages, GET /fault/{id}, POST /fault/events
#   BATCH=5               events per POST /fault/events
#   PIN=1                 pin the server to SERVER_CPUS and the generator to GEN_CPUS (default:
#                         the first and the second half of the CPUs); PIN=0 lets them share all
#   GEN_THREADS=          the generator's tokio worker threads (default: one per CPU it has)
#   OVERLOAD_COMMIT=TEXT  the commit the report names (default: this checkout's)
#   FAULTLINE_BIN=PATH    the server binary to run; without it this checkout is built
#   OVERLOAD_BIN=PATH     the generator to run; without it this checkout's example is built
#   NOSHED_BIN=PATH       the server for the "shedding off" runs, started without shedding flags:
#                         a build from before load shedding (e.g. 558e652). Without it, this
#                         build with --max-concurrent-requests 1000000, whose limit still adapts
#                         to the runtime's lateness: that is not "off"
#   (both builds run under `flock /tmp/faultline-build.lock`, not to race other builds)
#
# Needs cargo, curl, python3, taskset. Loopback only; every server it starts is stopped when it exits,
# also on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-15}"
CAPACITY_DURATION="${CAPACITY_DURATION:-10}"
WARMUP="${WARMUP:-3}"
ROUNDS="${ROUNDS:-3}"
FAULTS="${FAULTS:-100000}"
LIMIT="${LIMIT:-}"
MAX_IN_FLIGHT="${MAX_IN_FLIGHT:-2000}"
GRACE="${GRACE:-10}"
MIX="${MIX:-45,45,10}"
BATCH="${BATCH:-5}"
CORES=$(nproc)
PIN="${PIN:-$([ "$CORES" -ge 2 ] && echo 1 || echo 0)}"
SERVER_CPUS="${SERVER_CPUS:-0-$((CORES / 2 - 1))}"
GEN_CPUS="${GEN_CPUS:-$((CORES / 2))-$((CORES - 1))}"
RESULTS=bench/results
source bench/common.sh
# The shedding server runs with its default unless LIMIT says otherwise.
unset FAULTLINE_MAX_CONCURRENT_REQUESTS

if [ "$PIN" = 1 ]; then
    command -v taskset >/dev/null || { echo "$0: taskset is required (or PIN=0)" >&2; exit 1; }
    SERVER_CORES=$(taskset -c "$SERVER_CPUS" python3 -c 'import os; print(len(os.sched_getaffinity(0)))')
    GEN_CORES=$(taskset -c "$GEN_CPUS" python3 -c 'import os; print(len(os.sched_getaffinity(0)))')
    GEN_RUN=(taskset -c "$GEN_CPUS")
    PLACEMENT="the server pinned to CPU $SERVER_CPUS and the generator to CPU $GEN_CPUS (taskset)"
else
    SERVER_CORES=$CORES GEN_CORES=$CORES GEN_RUN=()
    PLACEMENT="the server and the generator share all $CORES cores"
fi
GEN_THREADS="${GEN_THREADS:-$GEN_CORES}"

for v in DURATION CAPACITY_DURATION WARMUP ROUNDS FAULTS MAX_IN_FLIGHT GRACE BATCH GEN_THREADS; do
    [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || { echo "$0: $v must be a positive whole number" >&2; exit 2; }
done
command -v curl >/dev/null || { echo "$0: curl is required" >&2; exit 1; }
command -v python3 >/dev/null || { echo "$0: python3 is required" >&2; exit 1; }
mkdir -p "$RESULTS"
DATE=$(date -u +%Y-%m-%dT%H:%MZ)
COMMIT="${OVERLOAD_COMMIT:-$(commit_line)}"
# The server's default: 32 requests per core it may run on.
SHED_LIMIT="${LIMIT:-$((32 * SERVER_CORES))}"
CONCURRENCY="${CONCURRENCY:-$SHED_LIMIT}"
GEN="${OVERLOAD_BIN:-${CARGO_TARGET_DIR:-target}/release/examples/overload}"
TICKS=$(getconf CLK_TCK)

# ---- the binaries -----------------------------------------------------------------------------
build=()
[ -n "${FAULTLINE_BIN:-}" ] || build+=(--bin faultline -p faultline)
[ -n "${OVERLOAD_BIN:-}" ] || build+=(--example overload -p faultline-server)
if [ ${#build[@]} -gt 0 ]; then
    log "cargo build --release ${build[*]} (waiting for /tmp/faultline-build.lock)"
    flock /tmp/faultline-build.lock cargo build --release "${build[@]}"
fi
[ -x "$BIN" ] || { echo "$0: no server binary at $BIN" >&2; exit 1; }
[ -x "$GEN" ] || { echo "$0: no generator at $GEN" >&2; exit 1; }
"$BIN" serve --help 2>&1 | grep -q -- --max-concurrent-requests ||
    { echo "$0: $BIN has no --max-concurrent-requests (no load shedding in this build)" >&2; exit 1; }

# ---- the data ---------------------------------------------------------------------------------
SEED_URL=$(fresh_database sqlite overload-seed)
log "loading $FAULTS demo faults"
FAULTLINE_LOG=error "$BIN" demo --faults "$FAULTS" --database-url "$SEED_URL" \
    >"$RESULTS/overload-seed.demo" 2>"$RESULTS/overload-demo.log"
KEY=$(awk 'NR == 1 { print $2 }' "$RESULTS/overload-seed.demo")
: >"$RESULTS/overload-gen.log"
rm -f "$RESULTS"/overload-*.json

# From here on the servers start pinned (start_server runs $BIN; exec keeps the PID).
if [ "$PIN" = 1 ]; then
    PINNED="$RESULTS/overload-pinned-faultline"
    printf '#!/bin/sh\nexec taskset -c %q %q "$@"\n' "$SERVER_CPUS" "$(realpath "$BIN")" >"$PINNED"
    chmod +x "$PINNED"
    BIN="$PINNED"
    if [ -n "${NOSHED_BIN:-}" ]; then
        printf '#!/bin/sh\nexec taskset -c %q %q "$@"\n' "$SERVER_CPUS" "$(realpath "$NOSHED_BIN")" \
            >"$RESULTS/overload-pinned-noshed"
        chmod +x "$RESULTS/overload-pinned-noshed"
        NOSHED_BIN="$RESULTS/overload-pinned-noshed"
    fi
fi

# serve NAME [FLAGS...]: a server on a fresh copy of the seed database; sets BASE and PID.
serve() {
    local name=$1
    shift
    local db="$RESULTS/overload-run.db"
    rm -f "$db" "$db-wal" "$db-shm"
    cp "$RESULTS/overload-seed.db" "$db"
    [ ! -f "$RESULTS/overload-seed.db-wal" ] || cp "$RESULTS/overload-seed.db-wal" "$db-wal"
    start_server "overload-$name" "sqlite://$PWD/$db" "$@"
    PID=${SERVER_PIDS[-1]}
}

# server_state: "VmHWM_kB VmRSS_kB cpu_s cores_busy_s clock_s shed_total": the running server's
# memory, its CPU time, the CPU time all processes used on the CPUs it may run on, the time, and
# its shed counter.
server_state() {
    python3 - "$PID" "$TICKS" <<'PY'
import os, sys, time
pid, ticks = int(sys.argv[1]), int(sys.argv[2])
status = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status"))
fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
cpus = {f"cpu{n}" for n in os.sched_getaffinity(pid)}
busy = 0
for line in open("/proc/stat"):
    name, *values = line.split()
    if name in cpus:
        values = list(map(int, values))
        busy += sum(values[:8]) - values[3] - values[4]  # all but idle and iowait
print(int(status["VmHWM"].split()[0]), int(status["VmRSS"].split()[0]),
      (int(fields[11]) + int(fields[12])) / ticks, busy / ticks, time.monotonic(), end=" ")
PY
    metric "$BASE" faultline_requests_shed_total
}

# generate LABEL ARGS...: one generator run; its JSON line goes to overload-LABEL.json, and the
# server's memory, CPU and shed counter before and after it to overload-LABEL.server.json.
generate() {
    local label=$1 before after
    shift
    log "$label: overload $*"
    before=$(server_state)
    "${GEN_RUN[@]}" "$GEN" --base "$BASE" --key "$KEY" --label "$label" --mix "$MIX" --batch "$BATCH" \
        --max-in-flight "$MAX_IN_FLIGHT" --grace "$GRACE" --threads "$GEN_THREADS" "$@" \
        >"$RESULTS/overload-$label.json" 2>>"$RESULTS/overload-gen.log"
    after=$(server_state)
    python3 -c '
import json, sys
b, a = [list(map(float, s.split())) for s in sys.argv[1:3]]
print(json.dumps({"hwm_before_kb": b[0], "rss_before_kb": b[1], "hwm_after_kb": a[0], "rss_after_kb": a[1],
                  "cpu_s": round(a[2] - b[2], 2), "cores_busy_s": round(a[3] - b[3], 2),
                  "wall_s": round(a[4] - b[4], 2), "shed_metric": a[5] - b[5]}))' "$before" "$after" \
        >"$RESULTS/overload-$label.server.json"
}

field() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$@"; }

# ---- 1. capacity ------------------------------------------------------------------------------
shed_flags=()
[ -z "$LIMIT" ] || shed_flags=(--max-concurrent-requests "$LIMIT")
serve capacity "${shed_flags[@]}"
generate capacity-warmup --closed "$CONCURRENCY" --duration "$WARMUP" --no-probes
generate capacity --closed "$CONCURRENCY" --duration "$CAPACITY_DURATION"
stop_servers
X=$(field "$RESULTS/overload-capacity.json" admitted_per_s)
X=${X%.*}
if [ -n "${CAPACITY:-}" ]; then
    log "capacity measured: $X requests/s; the rates use CAPACITY=$CAPACITY instead"
    MEASURED_X=$X
    X=$CAPACITY
fi
[ "$X" -gt 0 ] || { echo "$0: no capacity measured" >&2; exit 1; }
HALF=$((X / 2))
DOUBLE=$((X * 2))
log "capacity X = $X requests/s (closed loop, $CONCURRENCY workers): 0.5 X = $HALF/s, 2 X = $DOUBLE/s"

# ---- 2-4. rounds ------------------------------------------------------------------------------
# one_server MODE ROUND: a fresh server (MODE shed: default shedding; noshed: effectively off),
# WARMUP s at 0.5 X (discarded), DURATION s at 0.5 X, then DURATION s at 2 X.
one_server() {
    local mode=$1 round=$2 flags=("${shed_flags[@]}") shed_bin=$BIN
    if [ "$mode" = noshed ] && [ -n "${NOSHED_BIN:-}" ]; then
        BIN=$NOSHED_BIN
        flags=()
    elif [ "$mode" = noshed ]; then
        flags=(--max-concurrent-requests 1000000)
    fi
    serve "$mode-r$round" "${flags[@]}"
    BIN=$shed_bin
    generate "$mode-r$round-warmup" --rate "$HALF" --duration "$WARMUP" --no-probes
    generate "$mode-r$round-half" --rate "$HALF" --duration "$DURATION"
    generate "$mode-r$round-double" --rate "$DOUBLE" --duration "$DURATION"
    stop_servers
}

for round in $(seq 1 "$ROUNDS"); do
    if [ $((round % 2)) = 1 ]; then order="shed noshed"; else order="noshed shed"; fi
    for mode in $order; do
        one_server "$mode" "$round"
    done
done

# ---- the report -------------------------------------------------------------------------------
CPU=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
MEM_TOTAL=$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
export RESULTS DATE COMMIT CORES CPU MEM_TOTAL PLACEMENT GEN_THREADS DURATION ROUNDS FAULTS MIX BATCH \
    MAX_IN_FLIGHT LIMIT SHED_LIMIT CONCURRENCY WARMUP X HALF DOUBLE
export MEASURED_X="${MEASURED_X:-}"
if [ -n "${NOSHED_BIN:-}" ]; then
    NOSHED_DESC="a build without load shedding ($("${NOSHED_BIN}" --version 2>/dev/null | head -1), ${NOSHED_COMMIT:-another commit})"
else
    NOSHED_DESC="--max-concurrent-requests 1000000, whose limit still adapts"
fi
export NOSHED_DESC
python3 bench/overload_report.py | tee "$RESULTS/overload.md"
log "results in $RESULTS/overload-*.json; section in $RESULTS/overload.md"
