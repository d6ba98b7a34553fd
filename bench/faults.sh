#!/usr/bin/env bash
# The Faults API benchmark: on 1,000,000 demo faults (`faultline demo`), the throughput and
# p50/p99 latency of the read and write paths, each set against GET /healthz (the floor)
# measured by the same load generator in the same run. Appends a section to BENCHMARKS.md.
#
#   bench/faults.sh [sqlite|postgres|both]        (default: both)
#
# Environment (all optional):
#   FAULTS=1000000        faults to generate
#   DURATION=10s          per wrk run;  THREADS=2, CONNECTIONS=16
#   PAGES=1000            the deep page measured (reached by walking the cursor)
#   PG_ADMIN_URL=postgres://postgres@127.0.0.1:5432   where `faultline_bench` is dropped and created
#   REUSE=1               keep the database and key of the previous run of this script (the
#                         result says so): for iterating on the server, not for publishing
#   OUTPUT=BENCHMARKS.md  where the results section is appended
#
# Needs: cargo, curl, jq, wrk (installed with apt-get when missing), psql for PostgreSQL.
# Every server it starts is stopped when it exits, also on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

BACKENDS="${1:-both}"
FAULTS="${FAULTS:-1000000}"
DURATION="${DURATION:-10s}"
THREADS="${THREADS:-2}"
CONNECTIONS="${CONNECTIONS:-16}"
PAGES="${PAGES:-1000}"
PG_ADMIN_URL="${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432}"
OUTPUT="${OUTPUT:-BENCHMARKS.md}"
RESULTS=bench/results

source bench/common.sh
select_backends "$BACKENDS"
need_tools jq

# wrk_run NAME URL [LUA]: one bounded wrk run; appends "NAME req/s p50_ms p99_ms errors" to $TSV.
wrk_run() {
    local name="$1" url="$2" script="${3:-}" out="$RESULTS/$BACKEND-wrk-${1//[^A-Za-z0-9]/_}.txt"
    local args=(-t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -H "Authorization: Bearer $KEY")
    [ -n "$script" ] && args+=(-s "$script")
    log "$BACKEND: wrk $name"
    wrk "${args[@]}" "$url" >"$out"
    printf '%s\t%s\n' "$name" "$(wrk_row "$out")" >>"$TSV"
}

api() { curl -fsS -H "Authorization: Bearer $KEY" "$BASE$1"; }
now() { date +%s.%N; }
# seconds_since START [DIVIDEND]: the seconds since START, or DIVIDEND per second.
seconds_since() { awk -v a="$1" -v b="$(now)" -v d="${2:-}" 'BEGIN { s = b - a; printf "%.1f", d == "" ? s : d / s }'; }

for BACKEND in $BACKENDS; do
    DB_NAME=$([ "$BACKEND" = sqlite ] && echo faults-bench || echo faultline_bench)
    URL=$(database_url "$BACKEND" "$DB_NAME")
    KEY_FILE="$RESULTS/$BACKEND.demo"
    TSV="$RESULTS/$BACKEND.tsv"
    : >"$TSV"

    if [ "${REUSE:-0}" = 1 ] && [ -s "$KEY_FILE" ]; then
        log "$BACKEND: REUSE=1: keeping the database of the previous run"
        LOAD="reused from an earlier run (REUSE=1)"
    else
        log "$BACKEND: fresh database, $FAULTS demo faults"
        fresh_database "$BACKEND" "$DB_NAME" >/dev/null
        start=$(now)
        FAULTLINE_LOG=error "$BIN" demo --faults "$FAULTS" --database-url "$URL" \
            >"$KEY_FILE" 2>"$RESULTS/$BACKEND-demo.log"
        LOAD="$FAULTS faults generated and inserted by \`faultline demo\` in $(seconds_since "$start") s ($(seconds_since "$start" "$FAULTS") faults/s)"
        log "$BACKEND: $LOAD"
    fi
    KEY=$(awk 'NR == 1 { print $2 }' "$KEY_FILE")

    start_server "$BACKEND-serve" "$URL"
    log "$BACKEND: faultline serve on $BASE"

    first=$(api "/fault?limit=1")
    FAULT_ID=$(jq -r '.data[0].id' <<<"$first")
    SITE=$(jq -r '.data[0].site_id' <<<"$first")
    FILTER="site=$SITE&severity=HIGH,CRITICAL"

    log "$BACKEND: walking $((PAGES - 1)) pages to reach page $PAGES"
    cursor=""
    walk_start=$(now)
    for _ in $(seq 1 $((PAGES - 1))); do
        cursor=$(api "/fault${cursor:+?cursor=$cursor}" | jq -r '.meta.cursor // empty | @uri')
        [ -n "$cursor" ] || { echo "$0: fewer than $PAGES pages of faults" >&2; exit 1; }
    done
    WALK="Walk to page $PAGES by cursor (curl + jq, one page at a time): $(seconds_since "$walk_start") s"
    DEEP="/fault?cursor=$cursor"
    [ "$(api "$DEEP" | jq '.meta.count')" -gt 0 ]

    POST_LUA="$RESULTS/post-fault.lua"
    cat >"$POST_LUA" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"resource_id":"tun_benchmark0000001","type":"wantunnel","severity":"HIGH",' ..
    '"message":"WAN1 to DC-East tunnel down at Branch-001","cause":"BFD session down",' ..
    '"microservice_id":"wantunnel-monitor","resource_ancestry_path":"site_benchmark|dev_benchmark|tun_benchmark0000001"}'
LUA

    # Writes last, so that every read runs on exactly the generated data.
    wrk_run "GET /healthz" "$BASE/healthz"
    wrk_run "GET /fault/{id}" "$BASE/fault/$FAULT_ID"
    wrk_run "GET /fault" "$BASE/fault"
    wrk_run "GET /fault?site&severity" "$BASE/fault?$FILTER"
    wrk_run "GET /fault page $PAGES" "$BASE$DEEP"
    wrk_run "POST /fault" "$BASE/fault" "$POST_LUA"
    wrk_run "GET /healthz (again)" "$BASE/healthz"
    stop_servers

    printf -- '- Data: %s\n- %s\n' "$LOAD" "$WALK" >"$RESULTS/$BACKEND.notes"
done

# ---- the report -------------------------------------------------------------------------------
load_average=$(cut -d' ' -f1-3 /proc/loadavg)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || commit="$commit (with uncommitted changes)"
cpu=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
memory=$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
{
    [ -s "$OUTPUT" ] || printf '# Benchmarks\n\nResults of the scripts in `bench/`, newest last. Each section says how to reproduce it.\n'
    printf '\n## Faults API: %s\n\n' "$(date -u +%Y-%m-%dT%H:%MZ)"
    printf -- '- Command: `bench/faults.sh %s` (FAULTS=%s, wrk -t%s -c%s -d%s --latency)\n' \
        "${1:-both}" "$FAULTS" "$THREADS" "$CONNECTIONS" "$DURATION"
    printf -- '- Machine: %s cores (%s), %s memory; wrk and the server share them; load average at the end %s\n' \
        "$(nproc)" "$cpu" "$memory" "$load_average"
    printf -- '- Commit: %s\n' "$commit"
    printf -- '- The floor is `GET /healthz`, run first and again last; ratios are to the mean of the two.\n'
    for BACKEND in $BACKENDS; do
        printf '\n### %s\n\n' "$BACKEND"
        cat "$RESULTS/$BACKEND.notes"
        printf '\n'
        awk -F'\t' -v pages="$PAGES" -v backend="$BACKEND" '
            { name[NR] = $1; rps[NR] = $2; p50[NR] = $3; p99[NR] = $4; err[NR] = $5; n = NR }
            $1 == "GET /fault" { first_p99 = $4 }
            END {
                floor = (rps[1] + rps[n]) / 2;
                print "| request | req/s | p50 ms | p99 ms | vs floor | budget | met |";
                print "| --- | ---: | ---: | ---: | ---: | --- | --- |";
                for (i = 1; i <= n; i++) {
                    budget = ""; met = "";
                    ratio = floor > 0 ? rps[i] / floor : 0;
                    if (name[i] == "GET /fault/{id}") { budget = ">= 50% of floor"; met = ratio >= 0.5 }
                    else if (name[i] == "GET /fault" || name[i] == "GET /fault?site&severity") {
                        budget = ">= 20% of floor"; met = ratio >= 0.2
                    } else if (name[i] ~ /page/) {
                        budget = sprintf("p99 <= 2x page 1 (%.2f ms)", 2 * first_p99); met = p99[i] <= 2 * first_p99
                    } else if (name[i] == "POST /fault" && backend == "sqlite") {
                        budget = ">= 5,000/s"; met = rps[i] >= 5000
                    }
                    if (budget != "") met = met ? "yes" : "**no**";
                    if (err[i] > 0) met = met " (" err[i] " errors)";
                    printf "| `%s` | %d | %.2f | %.2f | %.0f%% | %s | %s |\n", name[i], rps[i], p50[i], p99[i], 100 * ratio, budget, met;
                }
            }' "$RESULTS/$BACKEND.tsv"
    done
} | tee -a "$OUTPUT"
