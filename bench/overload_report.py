"""The report of bench/overload.sh: reads its results (bench/results/overload-*.json) and prints a
markdown section for BENCHMARKS.md. The script passes its settings in the environment."""

import json
import os
import statistics

E = os.environ
RESULTS, ROUNDS, X = E["RESULTS"], int(E["ROUNDS"]), int(E["X"])
MODES = ("shed", "noshed")


def load(label):
    with open(f"{RESULTS}/overload-{label}.json") as f:
        run = json.load(f)
    with open(f"{RESULTS}/overload-{label}.server.json") as f:
        run["server"] = json.load(f)
    return run


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def spread(values, fmt):
    """The median, and the range when there is more than one value."""
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    m = fmt(statistics.median(values))
    return m if len(values) == 1 else f"{m} ({fmt(min(values))} to {fmt(max(values))})"


def ms(v):
    if v is None:
        return "n/a"
    return f"{v:.2f} ms" if v < 100 else f"{v:,.0f} ms"


pct = lambda v: "n/a" if v is None else f"{100 * v:.1f}%"
mb = lambda v: "n/a" if v is None else f"{v / 1024:,.0f} MB"
num = lambda v: "n/a" if v is None else f"{v:,.0f}"
ratio = lambda v: "n/a" if v is None else f"{v:.2f}"
cores = lambda v: "n/a" if v is None else f"{v:.2f}"
p99 = lambda run: run["admitted"]["p99_ms"]

capacity = load("capacity")
runs = {(m, r): (load(f"{m}-r{r}-half"), load(f"{m}-r{r}-double")) for m in MODES for r in range(1, ROUNDS + 1)}


def column(mode, f):
    return [f(*runs[mode, r]) for r in range(1, ROUNDS + 1)]


def others(run):
    """Cores' worth of CPU other processes used on the server's CPUs during the run."""
    server = run["server"]
    return max(server["cores_busy_s"] - server["cpu_s"], 0) / server["wall_s"]


def quotient(a, b):
    return a / b if a is not None and b else None


ratios = {m: column(m, lambda h, d: quotient(p99(d), p99(h))) for m in MODES}
budget_ratio = median(ratios["shed"])
budget_met = budget_ratio is not None and budget_ratio <= 2
mark = lambda ok: "✓" if ok else "✗"
open_runs = [run for pair in runs.values() for run in pair]
probe_max = lambda path: max((run[path]["max_ms"] or 0) for run in open_runs)
probe_failures = lambda path: sum(run[path]["failures"] for run in open_runs)
probe_polls = lambda path: sum(run[path]["count"] for run in open_runs)
failures = probe_failures("healthz") + probe_failures("metrics")
mix = capacity["mix"]

print(f"## Load shedding: {E['DATE']}")
print()
print(
    f"- Command: `bench/overload.sh` (DURATION={E['DURATION']} ROUNDS={ROUNDS} FAULTS={E['FAULTS']} MIX={E['MIX']} "
    f"BATCH={E['BATCH']} MAX_IN_FLIGHT={E['MAX_IN_FLIGHT']}); the shedding server with --max-concurrent-requests "
    f"{E['LIMIT'] or 'at its default'} = {E['SHED_LIMIT']}"
)
print(
    f"- Machine: {E['CORES']} cores ({E['CPU']}), {E['MEM_TOTAL']}, shared with other work (load average at the end "
    f"{open('/proc/loadavg').read().split()[0]}); {E['PLACEMENT']}, so the generator's extra work at 2 X does not "
    f"take CPU from the server; generator threads: {E['GEN_THREADS']}"
)
print(f"- Commit: {E['COMMIT']}")
print(f"- Data: a fresh copy, for every server, of one SQLite database of {int(E['FAULTS']):,} demo faults (`faultline demo`)")
print(
    f"- Load (`crates/faultline-server/examples/overload.rs`, demo key): {mix['list']}% `GET /fault?limit=50` (one of "
    f"the first {mix['pages']} pages), {mix['get']}% `GET /fault/{{id}}` (one of their {mix['ids']:,} faults), "
    f"{mix['write']}% `POST /fault/events` ({mix['batch']} events: 70% triggers, 30% resolves, on 500 tunnels). "
    f"Open loop: requests start on a fixed schedule whatever the answers; latency runs from the scheduled start to "
    f"the end of the answer, by status (\"from send\": from when the generator sent it); at most "
    f"{E['MAX_IN_FLIGHT']} outstanding, requests due past that are not sent (\"skipped\")."
)
measured = (
    f"given as CAPACITY (measured in this run: {int(E['MEASURED_X']):,} requests/s, "
    if E.get("MEASURED_X")
    else "measured: "
)
print(
    f"- Capacity X = **{X:,} requests/s**, {measured}the same client and mix in closed loop with "
    f"{E['CONCURRENCY']} workers (as many as the shedding server admits: it is kept saturated and sheds nothing), "
    f"{capacity['duration_s']:.0f} s after {E['WARMUP']} s of warm-up; its p50/p99 "
    f"{ms(capacity['admitted']['p50_ms'])} / {ms(p99(capacity))}{')' if E.get('MEASURED_X') else ''}. Then "
    f"{ROUNDS} rounds, each on two fresh servers (shedding at its limit, and shedding off with "
    f"{E.get('NOSHED_DESC', '--max-concurrent-requests 1000000')}; the order alternating): {E['WARMUP']} s of warm-up, {E['DURATION']} s at "
    f"0.5 X = {int(E['HALF']):,}/s, {E['DURATION']} s at 2 X = {int(E['DOUBLE']):,}/s. Medians over the rounds "
    f"(range); the ratio is taken within each round, on one server."
)
print(
    f"- Probes: `GET /healthz` and `GET /metrics` every 100 ms through every open-loop run "
    f"({probe_polls('healthz'):,} polls of each)."
)
print()
print("| figure | shedding | shedding off |")
print("| --- | ---: | ---: |")


def row(name, f, fmt):
    print(f"| {name} | {spread(column('shed', f), fmt)} | {spread(column('noshed', f), fmt)} |")


row("p99 of 2xx at 0.5 X (unloaded)", lambda h, d: p99(h), ms)
row("p99 of admitted (2xx) at 2 X", lambda h, d: p99(d), ms)
row("**p99 at 2 X / p99 at 0.5 X**", lambda h, d: quotient(p99(d), p99(h)), ratio)
row("p99 of admitted at 2 X, from send", lambda h, d: d["admitted_from_send"]["p99_ms"], ms)
row("p50 of 2xx at 0.5 X", lambda h, d: h["admitted"]["p50_ms"], ms)
row("p50 of admitted at 2 X", lambda h, d: d["admitted"]["p50_ms"], ms)
row("max of admitted at 2 X", lambda h, d: d["admitted"]["max_ms"], ms)
row(f"2xx answered a second at 2 X (X = {X:,})", lambda h, d: d["admitted_per_s"], num)
row("shed at 2 X (503 `overloaded`, share of sent)", lambda h, d: d["shed_share"], pct)
row("p99 of the 503 `overloaded` answers", lambda h, d: d["statuses"].get("503 overloaded", {}).get("p99_ms"), ms)
row(f"not sent at 2 X (generator at {E['MAX_IN_FLIGHT']} outstanding)", lambda h, d: d["skipped_share"], pct)
row(
    "other failures at 2 X (other 503s, errors, timeouts)",
    lambda h, d: d["unavailable_503"] + sum(v["count"] for k, v in d["statuses"].items() if k in ("error", "timeout")),
    num,
)
row("generator lateness at 2 X (dispatch lag p99)", lambda h, d: d["dispatch_lag"]["p99_ms"], ms)
row("server CPU at 2 X (cores busy)", lambda h, d: d["server"]["cpu_s"] / d["server"]["wall_s"], cores)
row("others' CPU on the server's cores at 2 X", lambda h, d: others(d), cores)
row("generator CPU at 2 X (cores busy)", lambda h, d: d.get("generator_cpu_s", 0) / d["server"]["wall_s"], cores)
row("server VmHWM before 2 X", lambda h, d: d["server"]["hwm_before_kb"], mb)
row("server VmHWM after 2 X", lambda h, d: d["server"]["hwm_after_kb"], mb)
row("server VmRSS after 2 X", lambda h, d: d["server"]["rss_after_kb"], mb)
row("`GET /healthz` max latency at 2 X", lambda h, d: d["healthz"]["max_ms"], ms)
row("`GET /metrics` max latency at 2 X", lambda h, d: d["metrics"]["max_ms"], ms)
print()
retry = sum(d["503_with_retry_after"] for _, d in runs.values())
all_503 = sum(d["shed"] + d["unavailable_503"] for _, d in runs.values())
print(
    f"Budget (issue 23): the p99 of the requests admitted at 2 X within 2× the unloaded p99: "
    f"**{ratio(budget_ratio)} {mark(budget_met)}** (per round: {', '.join(ratio(v) for v in ratios['shed'])}; "
    f"shedding off: {', '.join(ratio(v) for v in ratios['noshed'])}). Health and metrics answered throughout: "
    f"{failures} failed polls {mark(failures == 0)}, at most {ms(probe_max('healthz'))} (`/healthz`) and "
    f"{ms(probe_max('metrics'))} (`/metrics`). 503 answers with `Retry-After`: {retry:,} of {all_503:,}."
)
print()
print("Every run (latencies of the 2xx answers, ms; shed = 503 `overloaded`; skipped = not sent):")
print()
print(
    "| round | server | rate/s | sent | 2xx/s | p50 | p99 | p99 from send | max | shed | skipped | lag p99 | "
    "server CPU | others' CPU there | `/healthz` max | VmHWM before → after |"
)
print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
f2 = lambda v: "n/a" if v is None else f"{v:.2f}"
for r in range(1, ROUNDS + 1):
    for mode in MODES:
        for name, run in zip(("0.5 X", "2 X"), runs[mode, r]):
            a, s = run["admitted"], run["server"]
            print(
                f"| {r} | {mode} | {run['rate']:,.0f} ({name}) | {run['sent']:,} | {run['admitted_per_s']:,.0f} | "
                f"{f2(a['p50_ms'])} | {f2(a['p99_ms'])} | {f2(run['admitted_from_send']['p99_ms'])} | {f2(a['max_ms'])} | "
                f"{pct(run['shed_share'])} | {pct(run['skipped_share'])} | {f2(run['dispatch_lag']['p99_ms'])} | "
                f"{cores(s['cpu_s'] / s['wall_s'])} | {cores(others(run))} | {f2(run['healthz']['max_ms'])} | "
                f"{mb(s['hwm_before_kb'])} → {mb(s['hwm_after_kb'])} |"
            )
print()
shed_p99 = median(column("shed", lambda h, d: p99(d)))
half_p99 = median(column("shed", lambda h, d: p99(h)))
noshed_p99 = median(column("noshed", lambda h, d: p99(d)))
shed_share = median(column("shed", lambda h, d: d["shed_share"]))
shed_hwm = median(column("shed", lambda h, d: d["server"]["hwm_after_kb"]))
noshed_hwm = median(column("noshed", lambda h, d: d["server"]["hwm_after_kb"]))
print("Row for the current table:")
print()
print(
    f"| p99 of admitted requests at 2× capacity, SQLite, {int(E['FAULTS']):,} faults (open loop; {pct(shed_share)} "
    f"shed; VmHWM {mb(shed_hwm)}; shedding off: p99 {ms(noshed_p99)}, VmHWM {mb(noshed_hwm)}) | {ms(shed_p99)} | "
    f"p99 at 0.5× capacity: {ms(half_p99)} | {ratio(budget_ratio)} | ≤ 2× {mark(budget_met)} | "
    f"{E['DATE']} (`bench/overload.sh`) | {E['CORES']} vCPU, shared |"
)
