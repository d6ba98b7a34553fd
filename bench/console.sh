#!/usr/bin/env bash
# The operators' side, in one run on SQLite with FAULTS demo faults:
#  - the console: time from navigation to an interactive fault list (the first page on screen,
#    handlers attached: the `faultline:list-rendered` mark) in headless Chromium, median of
#    ROUNDS fresh page loads (bench/console_load.py); budget 1 s at 100,000 faults;
#  - its size: the first document and script together (budget 200 KB);
#  - the command line: `faultline faults list` (50 faults, a table; the process's whole wall time)
#    beside the API's own time for the same request (curl's time_total, without curl's start-up),
#    median of RUNS each, interleaved; budget: within 100 ms of the API's own time.
# Appends a section to BENCHMARKS.md.
#
#   bench/console.sh
#
# Environment (all optional): FAULTS=100000; ROUNDS=7; RUNS=21; OUTPUT=BENCHMARKS.md.
# Needs: cargo, curl, jq, python3, chromium and chromedriver (Debian packages).
set -euo pipefail
cd "$(dirname "$0")/.."

FAULTS="${FAULTS:-100000}"
ROUNDS="${ROUNDS:-7}"
RUNS="${RUNS:-21}"
OUTPUT="${OUTPUT:-BENCHMARKS.md}"
RESULTS=bench/results
source bench/common.sh
need_tools jq

URL=$(fresh_database sqlite console-bench)
log "faultline demo --faults $FAULTS"
KEY=$("$BIN" demo --faults "$FAULTS" --sites 200 --database-url "$URL" 2>"$RESULTS/console-demo.log" | head -n1 | cut -d' ' -f2)
start_server console "$URL"

log "console: $ROUNDS page loads"
BROWSER=$(python3 bench/console_load.py "$BASE" "$KEY" "$ROUNDS")
echo "$BROWSER" >"$RESULTS/console-browser.json"
MEDIAN=$(jq -r '.median_ms | . * 10 | round / 10' <<<"$BROWSER")
RANGE=$(jq -r '"\(.min_ms | round)-\(.max_ms | round)"' <<<"$BROWSER")
DOC=$(jq -r '[.sizes[] | select(.[0] | test("/console")) | .[1]] | first' <<<"$BROWSER")
SCRIPT=$(jq -r '[.sizes[] | select(.[0] | test("/assets/console-.*\\.js$")) | .[1]] | first' <<<"$BROWSER")
STYLE=$(jq -r '[.sizes[] | select(.[0] | test("/assets/console-.*\\.css$")) | .[1]] | first' <<<"$BROWSER")

log "command line: $RUNS runs beside curl"
ms_of() { # ms_of CMD...: wall milliseconds of one run
    local start end
    start=$(date +%s%N)
    "$@" >/dev/null 2>&1
    end=$(date +%s%N)
    echo $(( (end - start) / 1000 ))
}
CLI=() API=()
for _ in $(seq 1 "$RUNS"); do
    API+=("$(curl -sf -o /dev/null -w '%{time_total}' -H "Authorization: Bearer $KEY" "$BASE/fault?limit=50" |
        awk '{ printf "%d", $1 * 1000000 }')")
    CLI+=("$(ms_of env FAULTLINE_KEY="$KEY" "$BIN" faults list --url "$BASE" --limit 50)")
done
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] / 1000 }'; }
CLI_MS=$(median "${CLI[@]}")
API_MS=$(median "${API[@]}")
{
    printf '\n## Console and command line: %s\n\n' "$(date -u +%Y-%m-%dT%H:%MZ)"
    printf -- '- Command: `bench/console.sh` (FAULTS=%s, ROUNDS=%s, RUNS=%s), SQLite, one customer of %s demo faults\n' \
        "$FAULTS" "$ROUNDS" "$RUNS" "$FAULTS"
    printf -- '- Machine: %s cores, %s memory; Chromium, chromedriver and the server share them\n' "$(nproc)" "$(free -h | awk '/Mem:/ {print $2}')"
    printf -- '- Commit: %s\n\n' "$(commit_line)"
    printf '| figure | value | budget |\n| --- | ---: | --- |\n'
    printf '| Console: navigation to an interactive fault list (median of %s; range) | %s ms (%s) | ≤ 1,000 ms |\n' "$ROUNDS" "$MEDIAN" "$RANGE"
    printf '| Console: first document + script (+ stylesheet) | %s + %s B = %s B (+ %s B) | ≤ 200 KB |\n' \
        "$DOC" "$SCRIPT" "$((DOC + SCRIPT))" "$STYLE"
    printf '| `faultline faults list --limit 50`, the whole process (median of %s) | %s ms | |\n' "$RUNS" "$CLI_MS"
    printf '| The same request, its time in curl (`time_total`; median of %s) | %s ms | |\n' "$RUNS" "$API_MS"
    printf '| Command line over the API | %s ms | ≤ 100 ms |\n' "$(awk -v a="$CLI_MS" -v b="$API_MS" 'BEGIN { printf "%.1f", a - b }')"
} | tee -a "$OUTPUT"
