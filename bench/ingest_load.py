#!/usr/bin/env python3
"""Realistic ingest load, the same for faultline and for Prometheus Alertmanager.

Batches of BATCH events: about 70% triggers, each of a resource never seen before (so it opens a
fault, or a new alert), and 30% resolves of resources this connection triggered in an earlier
batch and has not resolved yet; nothing deduplicates. Each connection owns its resources (as a
monitoring source would), sends one batch at a time and waits for the answer.

    ingest_load.py faultline    URL KEY   (POST URL/fault/events, {"events": [...]})
    ingest_load.py alertmanager URL       (POST URL/api/v2/alerts, [alert, ...])

Every body is built before the clock starts, so that the generator spends its measured time
sending and receiving only; its own CPU time is reported beside the rate (it must stay far
below a core for the figure to be the server's). Bounded: it stops after DURATION seconds or
when the prepared batches run out (MAX_EVENTS in all), whichever comes first.

Environment: CONNECTIONS=4 BATCH=1000 DURATION=10 MAX_EVENTS=1200000 TRIGGERS=0.7 SEED=1
PREFIX=<random>. Prints one JSON object.
"""

import http.client
import json
import os
import random
import resource
import sys
import threading
import time
import urllib.parse

SEVERITIES = ["CRITICAL", "HIGH", "HIGH", "MEDIUM", "MEDIUM", "MEDIUM", "LOW", "LOW"]
AM_SEVERITIES = {"CRITICAL": "critical", "HIGH": "error", "MEDIUM": "warning", "LOW": "info"}


def severity(n):
    return SEVERITIES[(n * 2654435761) % len(SEVERITIES)]


def faultline_trigger(prefix, n):
    site = n % 500
    return (
        '{"action":"trigger","resource_id":"tun_%s_%d","type":"wantunnel","severity":"%s",'
        '"message":"WAN tunnel %d down at site %d","cause":"BFD session down",'
        '"resource_ancestry_path":"site_%s_%d|dev_%s_%d|tun_%s_%d"}'
        % (prefix, n, severity(n), n, site, prefix, site, prefix, n % 2000, prefix, n)
    )


def faultline_resolve(prefix, n):
    return '{"action":"resolve","resource_id":"tun_%s_%d","type":"wantunnel"}' % (prefix, n)


def am_labels(prefix, n):
    return (
        '"labels":{"alertname":"WanTunnelDown","resource_id":"tun_%s_%d","type":"wantunnel",'
        '"site":"site_%s_%d","device":"dev_%s_%d","severity":"%s"}'
        % (prefix, n, prefix, n % 500, prefix, n % 2000, AM_SEVERITIES[severity(n)])
    )


def am_trigger(prefix, n):
    # startsAt and endsAt left out: Alertmanager sets them to now and now + resolve_timeout.
    return (
        '{%s,"annotations":{"message":"WAN tunnel %d down at site %d","cause":"BFD session down"}}'
        % (am_labels(prefix, n), n, n % 500)
    )


def am_resolve(prefix, n, starts, ends):
    return '{%s,"startsAt":"%s","endsAt":"%s"}' % (am_labels(prefix, n), starts, ends)


def bodies_for(target, prefix, conn, batches, batch, triggers, rng):
    """The bodies one connection sends, in order, and its (triggers, resolves) counts."""
    now = time.time()
    starts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 3600))
    ends = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 1))
    prefix = "%s%d" % (prefix, conn)
    opened, next_n, counts, out = [], 0, [0, 0], []
    for _ in range(batches):
        events, new = [], []
        for _ in range(batch):
            if rng.random() < triggers or not opened:
                n, next_n = next_n, next_n + 1
                new.append(n)
                counts[0] += 1
                events.append(faultline_trigger(prefix, n) if target == "faultline" else am_trigger(prefix, n))
            else:
                i = rng.randrange(len(opened))
                n = opened[i]
                opened[i] = opened[-1]
                opened.pop()
                counts[1] += 1
                events.append(
                    faultline_resolve(prefix, n) if target == "faultline" else am_resolve(prefix, n, starts, ends)
                )
        opened.extend(new)
        body = ('{"events":[%s]}' if target == "faultline" else "[%s]") % ",".join(events)
        out.append((body.encode(), counts[:]))
    return out


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in ("faultline", "alertmanager"):
        sys.exit(__doc__)
    target, url = sys.argv[1], urllib.parse.urlsplit(sys.argv[2])
    key = sys.argv[3] if len(sys.argv) > 3 else ""
    env = os.environ
    connections = int(env.get("CONNECTIONS", "4"))
    batch = int(env.get("BATCH", "1000"))
    duration = float(env.get("DURATION", "10"))
    max_events = int(env.get("MAX_EVENTS", "1200000"))
    triggers = float(env.get("TRIGGERS", "0.7"))
    seed = int(env.get("SEED", "1"))
    prefix = env.get("PREFIX") or "g%x" % random.SystemRandom().getrandbits(40)
    path = "/fault/events" if target == "faultline" else "/api/v2/alerts"
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = "Bearer " + key

    batches = max(1, max_events // batch // connections)
    prepared = [
        bodies_for(target, prefix, c, batches, batch, triggers, random.Random(seed * 1000 + c))
        for c in range(connections)
    ]

    results = [None] * connections
    start_gate = threading.Barrier(connections + 1)

    def worker(c):
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
        conn.connect()
        latencies, errors, sent, last = [], 0, 0, (0, 0)
        start_gate.wait()
        deadline = time.perf_counter() + duration
        for body, counts in prepared[c]:
            if time.perf_counter() >= deadline:
                break
            t0 = time.perf_counter()
            try:
                conn.request("POST", path, body, headers)
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
            latencies.append(time.perf_counter() - t0)
            if ok:
                sent += 1
                last = counts
            else:
                errors += 1
        results[c] = (latencies, errors, sent, last, time.perf_counter())
        conn.close()

    threads = [threading.Thread(target=worker, args=(c,)) for c in range(connections)]
    for t in threads:
        t.start()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    start_gate.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = max(r[4] for r in results) - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    latencies = sorted(x for r in results for x in r[0])
    requests = sum(r[2] for r in results)
    events = requests * batch
    pct = lambda p: latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else 0
    print(
        json.dumps(
            {
                "target": target,
                "connections": connections,
                "batch": batch,
                "requests": requests,
                "events": events,
                "triggers": sum(r[3][0] for r in results),
                "resolves": sum(r[3][1] for r in results),
                "errors": sum(r[1] for r in results),
                "seconds": round(elapsed, 3),
                "events_per_s": round(events / elapsed) if elapsed > 0 else 0,
                "p50_ms": round(pct(0.50), 2),
                "p99_ms": round(pct(0.99), 2),
                "ran_out": all(r[2] + r[1] == len(prepared[i]) for i, r in enumerate(results)),
                "generator_cpu_s": round(cpu, 3),
                "generator_cpu_share": round(cpu / elapsed, 3) if elapsed > 0 else 0,
            }
        )
    )


if __name__ == "__main__":
    main()
