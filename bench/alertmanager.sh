#!/usr/bin/env bash
# Realistic ingest, faultline beside Prometheus Alertmanager 0.25 under the same load in one run:
# batches of 1,000 events, 70% triggers of new resources and 30% resolves of open ones, nothing
# deduplicated (bench/ingest_load.py: POST /fault/events for faultline, POST /api/v2/alerts for
# Alertmanager). Each process starts with 100,000 faults (alerts) loaded and takes the same
# events; reports events/s, the server's CPU per event, peak resident memory (VmHWM) and, on
# SQLite, the write-ahead log's size. Then, optionally, a sustained run that follows the log's
# size second by second, and the peak memory at 1,000,000 faults.
#
#   bench/alertmanager.sh [BINARY...]      (default: this checkout's release build)
#
# With several binaries each round runs every one of them (each on a fresh copy of the same
# 100,000-fault database), for comparing builds or settings side by side. A BINARY may be a
# wrapper script that ends in `exec env VAR=… faultline "$@"` (its file name is its label).
#
# Environment (all optional):
#   ROUNDS=3              rounds; each runs every binary on SQLite, Alertmanager, and PostgreSQL
#   BACKENDS="sqlite postgres"   faultline's backends (PostgreSQL: PG_ADMIN_URL, database
#                         faultline_ambench and its template faultline_ambench_tpl)
#   FAULTS=100000         faults (and alerts) loaded before each measured run
#   EVENTS=400000         events each measured run sends (the same for every process);
#   DURATION=120          ... or fewer, if this many seconds pass first
#   CONNECTIONS=4 BATCH=1000   senders, each with resources of its own; events a request
#   SUSTAIN=0             seconds of sustained ingest on SQLite (first binary), the log's size
#                         sampled each second and GET /fault measured before and after (0: none)
#   MILLION=0             1: peak memory of each binary at 1,000,000 faults (SQLite), under
#                         the same ingest and then reads of random faults (bench/random_fault.lua)
#                         and of the first page
#   OUTPUT=               a file to append the report to (it always goes to bench/results)
#
# Needs: curl, python3, sqlite3, wrk and prometheus-alertmanager (both installed with apt-get when
# missing), psql for PostgreSQL. Every process it starts is stopped when it exits.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${ROUNDS:-3}"
BACKENDS="${BACKENDS:-sqlite postgres}"
FAULTS="${FAULTS:-100000}"
EVENTS="${EVENTS:-400000}"
DURATION="${DURATION:-120}"
CONNECTIONS="${CONNECTIONS:-4}"
BATCH="${BATCH:-1000}"
SUSTAIN="${SUSTAIN:-0}"
MILLION="${MILLION:-0}"
RESULTS=bench/results
[ $# -gt 0 ] && FAULTLINE_BIN=$1
source bench/common.sh
need_tools python3 sqlite3
BINARIES=("$@")
[ ${#BINARIES[@]} -gt 0 ] || BINARIES=("$BIN")
AM_BIN=prometheus-alertmanager
if ! command -v "$AM_BIN" >/dev/null; then
    log "installing prometheus-alertmanager"
    apt-get install -y prometheus-alertmanager >/dev/null 2>&1 ||
        { apt-get update >/dev/null && apt-get install -y prometheus-alertmanager >/dev/null; }
fi
rm -rf "$RESULTS"/alertmanager.??????
TSV="$RESULTS/alertmanager.tsv"
: >"$TSV"
ticks=$(getconf CLK_TCK)

# start_alertmanager: Alertmanager on a free loopback port with a null receiver, no cluster
# and a storage folder of its own (its silences and notification log; alerts live in memory).
# Sets BASE.
start_alertmanager() {
    local port dir
    port=$(free_port)
    dir=$(mktemp -d "$RESULTS/alertmanager.XXXXXX")
    cat >"$dir/alertmanager.yml" <<'YAML'
route:
  receiver: "null"
receivers:
  - name: "null"
YAML
    BASE="http://127.0.0.1:$port"
    "$AM_BIN" --config.file="$dir/alertmanager.yml" --storage.path="$dir" \
        --web.listen-address="127.0.0.1:$port" --cluster.listen-address= --log.level=warn \
        >"$dir/out" 2>"$RESULTS/alertmanager.log" &
    SERVER_PIDS+=($!)
    for _ in $(seq 1 150); do
        curl -fsS "$BASE/-/ready" >/dev/null 2>&1 && return 0
        kill -0 "${SERVER_PIDS[-1]}" 2>/dev/null || { cat "$RESULTS/alertmanager.log" >&2; exit 1; }
        sleep 0.2
    done
    echo "$0: Alertmanager did not start" >&2
    exit 1
}

# status_kb PID FIELD: a line of /proc/PID/status, in kB.
status_kb() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
file_mb() { if [ -f "$1" ]; then stat -c %s "$1" | awk '{ printf "%.1f", $1 / 1e6 }'; else echo 0; fi; }

# load TARGET KEY [VAR=VALUE...]: bench/ingest_load.py against BASE; prints its JSON.
load() {
    local target=$1 key=$2
    shift 2
    env CONNECTIONS="$CONNECTIONS" BATCH="$BATCH" MAX_EVENTS="$EVENTS" DURATION="$DURATION" "$@" \
        python3 bench/ingest_load.py "$target" "$BASE" "$key"
}

# measure SYSTEM LABEL ROUND PID TARGET KEY [WAL]: one measured run; appends a row to $TSV.
measure() {
    local system=$1 label=$2 round=$3 pid=$4 target=$5 key=$6 wal=${7:-} before after json wal_mb="" hwm_before
    sync
    hwm_before=$(status_kb "$pid" VmHWM)
    before=$(cpu_ticks "$pid")
    json=$(load "$target" "$key")
    after=$(cpu_ticks "$pid")
    [ -n "$wal" ] && wal_mb=$(file_mb "$wal")
    python3 - "$json" "$system" "$label" "$round" "$((after - before))" "$ticks" \
        "$(status_kb "$pid" VmHWM)" "$(status_kb "$pid" RssAnon)" "$(status_kb "$pid" RssFile)" \
        "$wal_mb" "$hwm_before" >>"$TSV" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
system, label, rnd, cpu, ticks, hwm, anon, rfile, wal, hwm_before = sys.argv[2:]
us = int(cpu) / int(ticks) * 1e6 / max(1, r["events"])
print("\t".join(map(str, [system, label, rnd, r["events_per_s"], r["events"], r["errors"], r["p50_ms"],
                          r["p99_ms"], r["generator_cpu_share"], round(us, 1), round(int(hwm) / 1024),
                          round(int(anon) / 1024), round(int(rfile) / 1024), wal or "-",
                          r["triggers"], r["resolves"], round(int(hwm_before) / 1024)])))
PY
    log "$(tail -n1 "$TSV")"
}

# outcomes_ok BASE: the server counted no deduplicated event and no resolve of nothing.
outcomes() { curl -fsS "$1/metrics" | awk '/^faultline_ingest_events_total/ { printf "%s ", $0 }'; }

# ---- the data ---------------------------------------------------------------------------------
TEMPLATE="$RESULTS/ambench-template.db"
log "SQLite: $FAULTS demo faults into $TEMPLATE"
rm -f "$TEMPLATE" "$TEMPLATE-wal" "$TEMPLATE-shm"
FAULTLINE_LOG=error "${BINARIES[0]}" demo --faults "$FAULTS" --database-url "sqlite://$PWD/$TEMPLATE" \
    >"$RESULTS/ambench-sqlite.demo"
SQLITE_KEY=$(awk 'NR == 1 { print $2 }' "$RESULTS/ambench-sqlite.demo")
if [[ " $BACKENDS " == *" postgres "* ]]; then
    log "PostgreSQL: $FAULTS demo faults into faultline_ambench_tpl"
    fresh_database postgres faultline_ambench_tpl >/dev/null
    FAULTLINE_LOG=error "${BINARIES[0]}" demo --faults "$FAULTS" \
        --database-url "$(database_url postgres faultline_ambench_tpl)" >"$RESULTS/ambench-postgres.demo"
    PG_KEY=$(awk 'NR == 1 { print $2 }' "$RESULTS/ambench-postgres.demo")
fi

# fresh_copy: a new SQLite database copied from the template; prints its path.
fresh_copy() {
    local db="$RESULTS/ambench.db"
    rm -f "$db" "$db-wal" "$db-shm"
    cp "$TEMPLATE" "$db"
    [ -f "$TEMPLATE-wal" ] && cp "$TEMPLATE-wal" "$db-wal"
    echo "$db"
}

# ---- side by side -----------------------------------------------------------------------------
for round in $(seq 1 "$ROUNDS"); do
    for bin in "${BINARIES[@]}"; do
        BIN=$bin label=$(basename "$bin")
        if [[ " $BACKENDS " == *" sqlite "* ]]; then
            db=$(fresh_copy)
            log "round $round: $label on SQLite"
            start_server ambench-sqlite "sqlite://$PWD/$db"
            measure sqlite "$label" "$round" "${SERVER_PIDS[-1]}" faultline "$SQLITE_KEY" "$db-wal"
            log "outcomes: $(outcomes "$BASE")"
            stop_servers
        fi
        if [[ " $BACKENDS " == *" postgres "* ]]; then
            PGOPTIONS='-c client_min_messages=warning' psql "$PG_ADMIN_URL/postgres" -qX -v ON_ERROR_STOP=1 \
                -c "DROP DATABASE IF EXISTS faultline_ambench WITH (FORCE)" \
                -c "CREATE DATABASE faultline_ambench TEMPLATE faultline_ambench_tpl" >/dev/null
            log "round $round: $label on PostgreSQL"
            start_server ambench-postgres "$(database_url postgres faultline_ambench)"
            measure postgres "$label" "$round" "${SERVER_PIDS[-1]}" faultline "$PG_KEY"
            log "outcomes: $(outcomes "$BASE")"
            stop_servers
        fi
    done
    log "round $round: Alertmanager, $FAULTS alerts first"
    start_alertmanager
    load alertmanager "" TRIGGERS=1 MAX_EVENTS="$FAULTS" CONNECTIONS=4 >/dev/null
    measure alertmanager "alertmanager-0.25" "$round" "${SERVER_PIDS[-1]}" alertmanager ""
    stop_servers
done

# ---- sustained ingest: the write-ahead log ----------------------------------------------------
SUSTAIN_NOTES=""
if [ "$SUSTAIN" -gt 0 ]; then
    BIN=${BINARIES[0]}
    db=$(fresh_copy)
    log "sustained ingest: $SUSTAIN s on SQLite ($(basename "$BIN"))"
    start_server ambench-sustain "sqlite://$PWD/$db"
    pid=${SERVER_PIDS[-1]}
    list_rps() {
        wrk -t2 -c16 -d3s -H "Authorization: Bearer $SQLITE_KEY" "$BASE/fault" | awk '/^Requests\/sec:/ { printf "%.0f", $2 }'
    }
    list_before=$(list_rps)
    samples="$RESULTS/ambench-wal.tsv"
    : >"$samples"
    (
        for s in $(seq 1 $((SUSTAIN + 5))); do
            sleep 1
            printf '%s\t%s\t%s\n' "$s" "$(file_mb "$db-wal")" "$(file_mb "$db")" >>"$samples"
        done
    ) &
    sampler=$!
    json=$(load faultline "$SQLITE_KEY" DURATION="$SUSTAIN" MAX_EVENTS=$((SUSTAIN * 60000)))
    wait "$sampler" || true
    wal_end=$(file_mb "$db-wal")
    sleep 5
    wal_idle=$(file_mb "$db-wal")
    list_after=$(list_rps)
    hwm=$(status_kb "$pid" VmHWM)
    stop_servers
    wal_max=$(awk '$2 > m { m = $2 } END { print m + 0 }' "$samples")
    SUSTAIN_NOTES=$(python3 - "$json" "$wal_max" "$wal_end" "$wal_idle" "$(file_mb "$db-wal")" "$(file_mb "$db")" \
        "$list_before" "$list_after" "$hwm" "$(basename "$BIN")" "$SUSTAIN" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
wal_max, wal_end, wal_idle, wal_closed, db, before, after, hwm, label, secs = sys.argv[2:]
print(f"- Sustained ingest, {secs} s on SQLite ({label}): {r['events_per_s']:,} events/s "
      f"({r['events']:,} events, {r['errors']} failed requests); write-ahead log at most {wal_max} MB during it "
      f"(sampled each second), {wal_end} MB at its end, {wal_idle} MB 5 s later, {wal_closed} MB after the "
      f"server stopped; database file {db} MB. `GET /fault` (wrk -t2 -c16 -d3s) {before}/s before, "
      f"{after}/s after. VmHWM {int(hwm) // 1024} MB.")
PY
)
    log "$SUSTAIN_NOTES"
fi

# ---- 1,000,000 faults -------------------------------------------------------------------------
MILLION_NOTES=""
if [ "$MILLION" = 1 ]; then
    million="$RESULTS/ambench-million-template.db"
    rm -f "$million" "$million-wal" "$million-shm"
    log "1,000,000 demo faults"
    FAULTLINE_LOG=error "${BINARIES[0]}" demo --faults 1000000 --database-url "sqlite://$PWD/$million" \
        >"$RESULTS/ambench-million.demo"
    key=$(awk 'NR == 1 { print $2 }' "$RESULTS/ambench-million.demo")
    for BIN in "${BINARIES[@]}"; do
        db="$RESULTS/ambench-million.db"
        rm -f "$db" "$db-wal" "$db-shm"
        cp "$million" "$db"
        log "1,000,000 faults: $(basename "$BIN")"
        start_server ambench-million "sqlite://$PWD/$db"
        pid=${SERVER_PIDS[-1]}
        measure sqlite-1M "$(basename "$BIN")" 1 "$pid" faultline "$key" "$db-wal"
        after_ingest=$(status_kb "$pid" VmHWM)
        sqlite3 -readonly "$db" "SELECT id FROM faults ORDER BY random() LIMIT 20000" >"$RESULTS/ambench-million.ids"
        reads=""
        for path in /fault/random /fault; do
            args=(-t2 -c16 -d5s -H "Authorization: Bearer $key")
            [ "$path" = /fault/random ] && args+=(-s bench/random_fault.lua)
            rps=$(IDS="$RESULTS/ambench-million.ids" KEY="$key" wrk "${args[@]}" "$BASE$path" |
                awk '/^Requests\/sec:/ { printf "%.0f", $2 }')
            reads="$reads${reads:+; }\`GET $path\` $rps/s"
        done
        after_reads=$(status_kb "$pid" VmHWM)
        stop_servers
        MILLION_NOTES="$MILLION_NOTES${MILLION_NOTES:+
}- 1,000,000 faults on SQLite ($(basename "$BIN")), database $(file_mb "$million") MB before the run: VmHWM $((after_ingest / 1024)) MB after the same ingest run, $((after_reads / 1024)) MB after 5 s each of reads ($reads)."
    done
    log "$MILLION_NOTES"
fi

# ---- the report -------------------------------------------------------------------------------
REPORT="$RESULTS/alertmanager.md"
python3 - "$TSV" "$(date -u +%Y-%m-%dT%H:%MZ)" "$(commit_line)" "$(cut -d' ' -f1-3 /proc/loadavg)" \
    "$ROUNDS" "$FAULTS" "$EVENTS" "$CONNECTIONS" "$BATCH" >"$REPORT" <<'PY'
import statistics, sys
from collections import defaultdict
tsv, when, commit, load, rounds, faults, events, conns, batch = sys.argv[1:]
rows = [line.rstrip("\n").split("\t") for line in open(tsv) if line.strip()]
runs = defaultdict(list)
for r in rows:
    runs[(r[0], r[1])].append(r)
def med(rs, i):
    return statistics.median(float(r[i]) for r in rs)
def fmt(rs, i):
    vals = sorted(float(r[i]) for r in rs)
    m = med(rs, i)
    return f"{m:,.0f}" + (f" ({vals[0]:,.0f}–{vals[-1]:,.0f})" if len(vals) > 1 else "")
am = [v for k, v in runs.items() if k[0] == "alertmanager"]
am_eps = med(am[0], 3) if am else 0
am_hwm = med(am[0], 10) if am else 0
print(f"## Ingest beside Alertmanager 0.25: {when}\n")
print(f"- Command: `bench/alertmanager.sh` (ROUNDS={rounds}; {faults} faults or alerts loaded first; "
      f"{events} events a run, {conns} connections, batches of {batch}: 70% triggers of new resources, "
      f"30% resolves of open ones; bench/ingest_load.py)")
print(f"- Commit: {commit}; load average at the end {load}")
print("- Medians of the rounds (lowest–highest); ratios to Alertmanager's medians in the same run\n")
print("| process | backend | events/s | vs Alertmanager | server CPU µs/event | VmHWM MB | vs Alertmanager | VmHWM before the run MB | RssAnon MB | RssFile MB | WAL MB at end | p99 ms | generator CPU |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for (system, label), rs in runs.items():
    eps, hwm = med(rs, 3), med(rs, 10)
    wal = "-" if rs[0][13] == "-" else f"{med(rs, 13):.0f}"
    errors = sum(int(r[5]) for r in rs)
    print(f"| {label} | {system} | {fmt(rs, 3)} | {eps / am_eps:.2f} | {med(rs, 9):.1f} | {fmt(rs, 10)} | "
          f"{hwm / am_hwm:.2f} | {med(rs, 16):.0f} | {med(rs, 11):.0f} | {med(rs, 12):.0f} | {wal} | {med(rs, 7):.0f} | "
          f"{100 * med(rs, 8):.0f}%{' (' + str(errors) + ' failed requests)' if errors else ''} |")
PY
[ -n "$SUSTAIN_NOTES" ] && printf '\n%s\n' "$SUSTAIN_NOTES" >>"$REPORT"
[ -n "$MILLION_NOTES" ] && printf '\n%s\n' "$MILLION_NOTES" >>"$REPORT"
[ -n "${OUTPUT:-}" ] && { printf '\n'; cat "$REPORT"; } >>"$OUTPUT"
cat "$REPORT"
