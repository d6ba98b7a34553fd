# Shared by the bench/*.sh scripts (sourced): logging, the release build, a server that is
# stopped on exit, fresh databases, and wrk's summary as a table row.
# Expects the caller to have set RESULTS (a folder) and to be at the repository root.

# FAULTLINE_BIN=PATH runs that binary instead of building this checkout (to measure another
# build side by side with this one).
BIN="${FAULTLINE_BIN:-${CARGO_TARGET_DIR:-target}/release/faultline}"
PG_ADMIN_URL="${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432}"

log() { printf '== %s\n' "$*" >&2; }

# select_backends ARG: sets BACKENDS to the backends ARG names (sqlite, postgres or both).
select_backends() {
    case "$1" in
        sqlite | postgres) BACKENDS="$1" ;;
        both) BACKENDS="sqlite postgres" ;;
        *)
            echo "usage: $0 [sqlite|postgres|both]" >&2
            exit 2
            ;;
    esac
}

# need_tools [TOOL...]: curl and the TOOLs must be there; wrk is installed when missing; then
# the release build (unless FAULTLINE_BIN names a binary).
need_tools() {
    for tool in curl "$@"; do
        command -v "$tool" >/dev/null || { echo "$0: $tool is required" >&2; exit 1; }
    done
    if ! command -v wrk >/dev/null; then
        log "installing wrk"
        apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
    fi
    if [ -z "${FAULTLINE_BIN:-}" ]; then
        log "cargo build --release"
        cargo build --release -p faultline
    fi
    mkdir -p "$RESULTS"
}

SERVER_PIDS=()
stop_servers() {
    for pid in "${SERVER_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    SERVER_PIDS=()
}
trap stop_servers EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# database_url BACKEND NAME: the URL of the benchmark database NAME.
database_url() {
    case "$1" in
        sqlite) echo "sqlite://$PWD/$RESULTS/$2.db" ;;
        postgres) echo "$PG_ADMIN_URL/$2" ;;
    esac
}

# fresh_database BACKEND NAME: prints the URL of a new, empty database.
fresh_database() {
    case "$1" in
        sqlite)
            local db="$RESULTS/$2.db"
            rm -f "$db" "$db-wal" "$db-shm"
            ;;
        postgres)
            PGOPTIONS='-c client_min_messages=warning' psql "$PG_ADMIN_URL/postgres" -qX -v ON_ERROR_STOP=1 \
                -c "DROP DATABASE IF EXISTS $2 WITH (FORCE)" -c "CREATE DATABASE $2" >/dev/null
            ;;
    esac
    database_url "$1" "$2"
}

# start_server NAME URL [FLAGS...]: starts `faultline serve` on a free port, waits until it
# answers, and sets BASE. Its stdout and stderr go to $RESULTS/NAME.out and NAME.log.
start_server() {
    local name=$1 url=$2
    shift 2
    local port
    port=$(free_port)
    BASE="http://127.0.0.1:$port"
    FAULTLINE_RATE_LIMIT=100000000 FAULTLINE_LOG="${FAULTLINE_LOG:-warn}" \
        "$BIN" serve --listen "127.0.0.1:$port" --database-url "$url" "$@" \
        >"$RESULTS/$name.out" 2>"$RESULTS/$name.log" &
    SERVER_PIDS+=($!)
    for _ in $(seq 1 150); do
        curl -fsS "$BASE/healthz" >/dev/null 2>&1 && return 0
        kill -0 "${SERVER_PIDS[-1]}" 2>/dev/null || { cat "$RESULTS/$name.log" >&2; exit 1; }
        sleep 0.2
    done
    echo "$0: the server did not start" >&2
    exit 1
}

# wrk_row [FILE]: "requests/s <tab> p50 ms <tab> p99 ms <tab> errors" from wrk --latency output
# (in FILE, or on standard input).
wrk_row() {
    awk '
        function ms(v) {
            if (v ~ /us$/) return v / 1000;
            if (v ~ /ms$/) return v + 0;
            if (v ~ /s$/) return v * 1000;
            return v;
        }
        $1 == "50%" { p50 = ms($2) }
        $1 == "99%" { p99 = ms($2) }
        /^Requests\/sec:/ { rps = $2 }
        /Non-2xx or 3xx responses:/ { errors += $NF }
        /Socket errors:/ { errors += $4 + $6 + $8 + $10 }
        END { printf "%.0f\t%.2f\t%.2f\t%d\n", rps, p50, p99, errors }
    ' "$@"
}

# metric BASE NAME: the sum of a Prometheus metric's samples (all label sets).
metric() {
    curl -fsS "$1/metrics" | awk -v name="$2" '$1 == name || index($1, name "{") == 1 { sum += $NF } END { print sum + 0 }'
}

commit_line() {
    local commit
    commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
    git diff --quiet HEAD 2>/dev/null || commit="$commit (with uncommitted changes)"
    echo "$commit"
}
