#!/usr/bin/env python3
"""The report of bench/soak.sh, from the per-minute CSV and the JSON summary of soak_load.py:

- the per-minute table in markdown (--table),
- a plot of resident memory, p99 latency, database size and CPU over time (--png),
- a section ready to paste into BENCHMARKS.md (--section): the setup, the verdict, the totals
  per kind, every fifth minute of the table, and a row for the current table,
- the verdict, printed last: resident memory growth from minute 10 to the end (budget < 10%).

Needs matplotlib (soak.sh installs it in a venv).
"""

import argparse
import csv
import json

KINDS = [  # (CSV prefix, label)
    ("ingest", "POST /fault/events"),
    ("list", "GET /fault"),
    ("get", "GET /fault/{id}"),
    ("heartbeat", "POST /heartbeat"),
]
BASELINE_MINUTE = 10  # memory is compared from here on, after caches and pools have warmed up
BUDGET_PCT = 10.0


def number(text):
    return float(text) if text not in ("", None) else None


def load(path):
    with open(path) as f:
        return [{k: (v if k == "minute" else number(v)) for k, v in row.items()} for row in csv.DictReader(f)]


def verdict(rows):
    """(baseline minute, RSS there, RSS at the end, growth %, note)."""
    minutes = int(rows[-1]["minute"])
    base = BASELINE_MINUTE if minutes > BASELINE_MINUTE else 1
    note = "" if base == BASELINE_MINUTE else (
        f" (a {minutes}-minute run: measured from minute 1, not {BASELINE_MINUTE}; not the budget's verdict)")
    start = next(r for r in rows if int(r["minute"]) == base)["rss_mb"]
    end = rows[-1]["rss_mb"]
    return base, start, end, 100 * (end - start) / start, note


def fmt(value, digits=1):
    if value is None:
        return ""
    return f"{value:,.{digits}f}" if digits else f"{value:,.0f}"


def table(rows, every=1):
    """The per-minute markdown table (every `every`-th minute, and the last)."""
    lines = [
        "| minute | RSS MB | DB + WAL MB | WAL MB | server CPU % | generator CPU % | load | "
        + " | ".join(f"{label} n / err / p50 / p99 ms" for _, label in KINDS)
        + " | stream events / reconnects / lag p50 / p99 ms | outages ended |",
        "| ---: " * 7 + "| ---: " * len(KINDS) + "| ---: | ---: |",
    ]
    last = int(rows[-1]["minute"])
    for r in rows:
        m = int(r["minute"])
        if m % every and m != last and m != BASELINE_MINUTE:
            continue
        cells = [str(m), fmt(r["rss_mb"]), fmt(r["db_total_mb"]), fmt(r["wal_mb"]), fmt(r["server_cpu_pct"]),
                 fmt(r["generator_cpu_pct"]), fmt(r["load1"], 2)]
        for kind, _ in KINDS:
            if r[f"{kind}_n"] is None:
                cells.append("")
            else:
                cells.append(f"{fmt(r[f'{kind}_n'], 0)} / {fmt(r[f'{kind}_err'], 0)} / "
                             f"{fmt(r[f'{kind}_p50_ms'], 2)} / {fmt(r[f'{kind}_p99_ms'], 2)}")
        if r["stream_events"] is None:
            cells += ["", ""]
        else:
            cells.append(f"{fmt(r['stream_events'], 0)} / {fmt(r['stream_reconnects'], 0)} / "
                         f"{fmt(r['stream_lag_p50_ms'], 1)} / {fmt(r['stream_lag_p99_ms'], 1)}")
            cells.append(fmt(r["outages_ended"], 0))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(rows, path, title, base, budget_mb):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

    minutes = [int(r["minute"]) for r in rows]
    fig, axes = plt.subplots(4, 1, figsize=(10, 11), sharex=True, height_ratios=[3, 3, 2, 2])
    fig.suptitle(title)

    ax = axes[0]
    ax.plot(minutes, [r["rss_mb"] for r in rows], marker=".", label="VmRSS")
    ax.axvline(base, color="grey", linestyle=":", label=f"minute {base}")
    ax.axhline(budget_mb, color="red", linestyle="--", label=f"budget: minute {base} + {BUDGET_PCT:.0f}%")
    ax.set_ylabel("server resident memory, MB")
    ax.set_ylim(bottom=0)
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)

    ax = axes[1]
    load_rows = [r for r in rows if r["ingest_n"] is not None]
    x = [int(r["minute"]) for r in load_rows]
    for kind, label in KINDS:
        ax.plot(x, [r[f"{kind}_p99_ms"] for r in load_rows], marker=".", label=label)
    ax.plot(x, [r["stream_lag_p99_ms"] for r in load_rows], marker=".", linestyle="--", label="stream delivery lag")
    ax.axvline(base, color="grey", linestyle=":")
    ax.set_yscale("log")  # a spike of one minute should not flatten the others
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    values = [r[f"{k}_p99_ms"] for r in load_rows for k, _ in KINDS + [("stream_lag", "")] if r[f"{k}_p99_ms"]]
    if values:  # room above the lines for the legend
        ax.set_ylim(min(values) / 1.5, max(values) * 5)
    ax.set_ylabel("p99 of the minute, ms")
    ax.legend(loc="upper left", fontsize="small", ncol=3)
    ax.grid(alpha=0.3, which="both")

    ax = axes[2]
    ax.plot(minutes, [r["db_total_mb"] for r in rows], marker=".", label="database + WAL")
    ax.plot(minutes, [r["wal_mb"] for r in rows], marker=".", label="WAL")
    ax.set_ylabel("SQLite files, MB")
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)

    ax = axes[3]
    ax.plot(x, [r["server_cpu_pct"] for r in load_rows], marker=".", label="server")
    ax.plot(x, [r["generator_cpu_pct"] for r in load_rows], marker=".", label="load generator")
    ax.set_ylabel("CPU, % of one core")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("minute of the run")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)

    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--csv", required=True)
    p.add_argument("--summary", required=True)
    p.add_argument("--table", required=True, help="the per-minute markdown table to write")
    p.add_argument("--png", required=True, nargs="+", help="where to write the plot (one or more paths)")
    p.add_argument("--section", required=True, help="the BENCHMARKS.md section to write")
    p.add_argument("--command", required=True)
    p.add_argument("--commit", required=True)
    p.add_argument("--machine", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--plot-path", required=True, help="the plot's path as the section names it")
    p.add_argument("--date", required=True)
    args = p.parse_args()

    rows = load(args.csv)
    summary = json.load(open(args.summary))
    minutes = summary["minutes"]
    base, start, end, growth, note = verdict(rows)
    met = growth < BUDGET_PCT
    mark = "✓" if met else "✗"
    verdict_line = (f"Verdict: resident memory {start:.1f} MB at minute {base}, {end:.1f} MB at minute {minutes}: "
                    f"{growth:+.1f}% (budget < {BUDGET_PCT:.0f}%) {mark}{note}")

    with open(args.table, "w") as f:
        f.write(table(rows))
    for path in args.png:
        plot(rows, path, f"faultline soak, SQLite, {minutes} minutes ({args.date}, {args.commit})",
             base, start * (1 + BUDGET_PCT / 100))

    rates, kinds = summary["rates"], summary["kinds"]
    loads = [r["load1"] for r in rows if r["load1"] is not None]
    ingested = sum(r["events_ingested"] or 0 for r in rows)
    outages = kinds["heartbeat"]["extra"]
    section = [
        f"\n## Soak, SQLite, {minutes} minutes: {args.date}\n",
        f"- Command: `{args.command}`",
        f"- Machine: {args.machine}; load average (1 min) {min(loads):.2f}-{max(loads):.2f} during the run",
        f"- Commit: {args.commit}",
        f"- Data: {args.data}",
        f"- Load, at fixed rates, each kind from its own Python process (bench/soak_load.py): "
        f"`POST /fault/events` {rates['ingest_requests_per_s']:g}/s in batches of {rates['ingest_batch']} "
        f"({rates['ingest_events_per_s']:g} events/s: new triggers, re-triggers that deduplicate and resolves, "
        f"about {rates['open_target']:,} left open); `GET /fault` {rates['list_per_s']:g}/s (first pages, "
        f"site + severity filters, cursor walks 20 pages deep); `GET /fault/{{id}}` {rates['get_per_s']:g}/s; "
        f"`POST /heartbeat` {rates['heartbeats_per_s']:g}/s ({rates['heartbeat_sites']} sites every "
        f"{rates['heartbeat_period_s']:g} s, one a request; each minute {rates['silent_sites_per_minute']} fall "
        f"silent for 90 s, so the detector opens outages that the next heartbeat ends: {outages:,} ended); "
        f"{rates['stream_clients']} `GET /fault/stream` clients held open throughout, reading every event",
        f"- CPU, mean over the run: server {summary['server_cpu_pct']:.1f}% of one core, load generator "
        f"{summary['generator_cpu_pct']:.1f}%; {ingested:,.0f} events ingested; peak resident memory (VmHWM) "
        f"{summary['hwm_mb']:.1f} MB; database + WAL {rows[0]['db_total_mb']:.1f} MB at the start, "
        f"{rows[-1]['db_total_mb']:.1f} MB at the end (WAL at most {max(r['wal_mb'] for r in rows):.1f} MB)",
        f"- Latency: from sending a request to having read its whole response, kept-alive connections; "
        f"stream: delivery lag of the ingested faults' events, from the event's `occurred_at` to its arrival "
        f"at a client",
        f"- **{verdict_line}**",
        f"- Plot: `{args.plot_path}` (memory, p99 per kind, database size, CPU by minute); the whole "
        f"per-minute table is in `bench/results/` (`{args.table.split('/')[-1]}`, and the CSV)",
        "",
        "| kind | requests | errors | p50 ms | p99 ms | max ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for kind, label in KINDS + [("stream", "stream deliveries (lag; errors are reconnections)")]:
        k = kinds[kind]
        section.append(f"| {label} | {k['requests'] - k['errors']:,} | {k['errors']:,} | {k['p50_ms']} | "
                       f"{k['p99_ms']} | {k['max_ms']} |")
    every = 1 if minutes <= 15 else 5
    section += ["", f"Every {'' if every == 1 else 'fifth '}minute (n / errors / p50 / p99 of the requests sent in it):",
                "", table(rows, every)]
    section += [
        "Row for the current table:",
        "",
        f"| Soak, SQLite, {minutes} min of mixed load: resident memory growth after minute {base} | "
        f"{growth:+.1f}% ({start:.0f} → {end:.0f} MB) | VmRSS at minute {base} | {end / start:.2f} | "
        f"< +{BUDGET_PCT:.0f}% {mark} | {args.date} ({args.commit}) | {args.machine.split(';')[0]} |",
        "",
    ]
    with open(args.section, "w") as f:
        f.write("\n".join(section))
    print(verdict_line)


if __name__ == "__main__":
    main()
