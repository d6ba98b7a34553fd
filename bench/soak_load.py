#!/usr/bin/env python3
"""The load generator and sampler of bench/soak.sh: MINUTES of mixed load at fixed, moderate
rates against one running `faultline serve`, and once a minute a row of what the server looked
like (resident memory, CPU, database size) and how the requests of that minute fared.

Kinds of load, each from its own process so that no kind's Python work delays another's timing:

- ingest     POST /fault/events, batches of INGEST_BATCH events: triggers of new resources,
             re-triggers of open ones (they deduplicate) and resolves of open ones, with about
             OPEN_TARGET faults left open per thread, so the open set stays bounded while the
             table keeps growing (as it does in production).
- list       GET /fault pages: the first page, a filtered one (site + severity), or the next
             page of a cursor walk (up to 20 pages deep, then from the top again).
- get        GET /fault/{id} of ids seen in those pages (same process as `list`).
- heartbeat  POST /heartbeat, one site a request, for a fleet of HB_SITES sites each reporting
             every HB_PERIOD seconds. Each minute HB_SILENT sites fall silent for 90 s: the
             detector opens an outage for each, and their next heartbeat ends it.
- stream     STREAM_CLIENTS connections to GET /fault/stream held open the whole run, reading
             every event; its "latency" is the delivery lag of the ingest's faults, from the
             event's `occurred_at` to its arrival (so it includes the client's own queueing),
             and its errors are reconnections (a dropped stream or a `resync`).

Latency is the time from sending a request to having read its whole response, on a kept-alive
connection (a new one after an error). Requests are paced to fixed times; a thread that falls
behind does not catch up in a burst, so a slow server shows as fewer requests, not as a queue.
Everything is bounded: the run ends after MINUTES, each request after TIMEOUT seconds.

Writes the per-minute rows to --csv as they are measured, and a JSON summary to --summary.
Standard library only.
"""

import argparse
import asyncio
import csv
import http.client
import json
import math
import multiprocessing as mp
import os
import queue
import random
import resource
import sys
import threading
import time
import urllib.parse
from datetime import datetime, timezone

TIMEOUT = 10.0  # seconds a request may take before it counts as an error
GRACE = TIMEOUT + 2  # a minute's row is written this long after it ends, when its requests are in
KINDS = ["ingest", "list", "get", "heartbeat"]
SEVERITIES = ["CRITICAL", "HIGH", "HIGH", "MEDIUM", "MEDIUM", "MEDIUM", "LOW", "LOW"]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# ---- shared by the load processes -------------------------------------------------------------


class Recorder:
    """Collects (kind, seconds since t0 at the send, latency s, ok, extra) records in a load
    process and hands them to the coordinator once a second, and at the end."""

    def __init__(self, out, t0):
        self.out, self.t0, self.items, self.lock = out, t0, [], threading.Lock()
        self.errors_shown = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._flush_loop, daemon=True)
        self.thread.start()

    def add(self, kind, sent, latency, ok, extra=0, detail=None):
        with self.lock:
            self.items.append((kind, sent - self.t0, latency, ok, extra))
            if not ok and detail and self.errors_shown < 10:
                self.errors_shown += 1
                print(f"soak: {kind} error: {detail}", file=sys.stderr, flush=True)

    def _flush(self):
        with self.lock:
            items, self.items = self.items, []
        if items:
            self.out.put(items)

    def _flush_loop(self):
        while not self.done.wait(1.0):
            self._flush()

    def close(self):
        self.done.set()
        self.thread.join()
        self._flush()


class Client:
    """One kept-alive HTTP/1.1 connection to the server (http.client)."""

    def __init__(self, base, key):
        parts = urllib.parse.urlsplit(base)
        self.host, self.port, self.conn = parts.hostname, parts.port, None
        self.headers = {"Authorization": "Bearer " + key, "Content-Type": "application/json"}

    def request(self, method, path, body=None):
        """(status, body bytes); raises OSError or HTTPException (and reconnects next time)."""
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT)
        try:
            # A bytes body goes out in the same send() as the headers (no Nagle delay).
            self.conn.request(method, path, body, self.headers)
            response = self.conn.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = None
            raise


def timed(recorder, client, kind, method, path, body=None, expect=200):
    """Sends one request and records it; returns the response body, or None on an error."""
    sent = time.monotonic()
    try:
        status, data = client.request(method, path, body)
        detail = None if status == expect else f"{method} {path.split('?')[0]} answered {status}: {data[:200]!r}"
    except (OSError, http.client.HTTPException) as e:
        status, data, detail = None, None, f"{method} {path.split('?')[0]}: {e!r}"
    latency = time.monotonic() - sent
    ok = detail is None
    recorder.add(kind, sent, latency, ok, 0, detail)
    return data if ok else None


def paced(rate, offset, t0, stop_at, step):
    """Calls step() `rate` times a second from t0 + offset until stop_at. A call that starts
    late does not make the next ones come sooner: when more than one interval behind, the
    schedule restarts from now."""
    interval = 1.0 / rate
    due = t0 + offset
    while True:
        now = time.monotonic()
        if now >= stop_at:
            return
        if due > now:
            time.sleep(min(due - now, stop_at - now))
            continue
        step()
        due += interval
        if time.monotonic() - due > interval:
            due = time.monotonic()


def run_threads(targets):
    threads = [threading.Thread(target=t) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


# ---- ingest ---------------------------------------------------------------------------------


def ingest_process(args, out, t0, stop_at):
    recorder = Recorder(out, t0)
    run = f"{time.time_ns() % 10**10:x}"
    threads = args.ingest_threads
    rate = args.ingest_rate / threads

    def worker(index):
        client = Client(args.base, args.key)
        rng = random.Random(index)
        opened, next_n = [], 0  # the resources this thread has open, the next new one

        def trigger(n):
            site, device = n % 100, n % 400
            return {"action": "trigger", "resource_id": f"tun_soak{run}_{index}_{n}", "type": "wantunnel",
                    "severity": SEVERITIES[n % len(SEVERITIES)],
                    "message": f"WAN tunnel {n} down at site {site}", "cause": "BFD session down",
                    "microservice_id": "soak-monitor",
                    "resource_ancestry_path": f"site_soak_{site}|dev_soak_{device}|tun_soak{run}_{index}_{n}"}

        def step():
            nonlocal next_n
            events = []
            for _ in range(args.ingest_batch):
                r = rng.random()
                if len(opened) < args.open_target or r < 0.45:  # a new resource goes down
                    events.append(trigger(next_n))
                    opened.append(next_n)
                    next_n += 1
                elif r < 0.55:  # an open one is reported again: deduplicates
                    events.append(trigger(opened[rng.randrange(len(opened))]))
                else:  # an open one recovers
                    i = rng.randrange(len(opened))
                    n, opened[i] = opened[i], opened[-1]
                    opened.pop()
                    events.append({"action": "resolve", "resource_id": f"tun_soak{run}_{index}_{n}", "type": "wantunnel"})
            body = json.dumps({"events": events}).encode()
            timed(recorder, client, "ingest", "POST", "/fault/events", body)

        paced(rate, index / args.ingest_rate, t0, stop_at, step)

    run_threads([lambda i=i: worker(i) for i in range(threads)])
    recorder.close()


# ---- reads: GET /fault and GET /fault/{id} --------------------------------------------------


def reads_process(args, out, t0, stop_at):
    recorder = Recorder(out, t0)
    ids, sites = [], []  # fault ids and site ids seen in pages (shared by the threads below)
    lock = threading.Lock()
    rng = random.Random(7)

    def remember(page):
        """Keeps the page's fault ids and sites for later requests; returns its cursor."""
        page = json.loads(page)
        with lock:
            for fault in page.get("data", []):
                if len(ids) < 20000:
                    ids.append(fault["id"])
                else:
                    ids[rng.randrange(len(ids))] = fault["id"]
                if fault.get("site_id") and len(sites) < 500 and fault["site_id"] not in sites:
                    sites.append(fault["site_id"])
        return page.get("meta", {}).get("cursor")

    def lister(index):
        client = Client(args.base, args.key)
        cursor, depth = None, 0

        def step():
            nonlocal cursor, depth
            r = rng.random()
            if r < 0.25 and cursor:  # the next page of the walk
                path, walking = "/fault?cursor=" + urllib.parse.quote(cursor, safe=""), True
            elif r < 0.5 and sites:  # a filtered page
                with lock:
                    site = sites[rng.randrange(len(sites))]
                path, walking = f"/fault?site={urllib.parse.quote(site)}&severity=HIGH,CRITICAL", False
            else:  # the first page, which also starts a new walk
                path, walking = "/fault", True
                cursor, depth = None, 0
            page = timed(recorder, client, "list", "GET", path)
            if page is not None:
                next_cursor = remember(page)
                if walking:
                    depth += 1
                    cursor = next_cursor if depth < 20 else None

        paced(args.list_rate / args.read_threads, index / args.list_rate, t0, stop_at, step)

    def getter(index):
        client = Client(args.base, args.key)

        def step():
            with lock:
                fault_id = ids[rng.randrange(len(ids))] if ids else None
            if fault_id:
                timed(recorder, client, "get", "GET", "/fault/" + fault_id)

        paced(args.get_rate / args.read_threads, 0.5 + index / args.get_rate, t0, stop_at, step)

    run_threads([lambda i=i: lister(i) for i in range(args.read_threads)]
                + [lambda i=i: getter(i) for i in range(args.read_threads)])
    recorder.close()


# ---- heartbeats -------------------------------------------------------------------------------


def silent(site, t, sites, per_minute):
    """Whether `site` keeps quiet at t (seconds since t0): each minute m, from its start, the
    sites m*per_minute .. (m+1)*per_minute - 1 (modulo the fleet) are silent for 90 s."""
    minute = int(t // 60)
    for m in (minute, minute - 1):
        if m >= 0 and t - 60 * m < 90 and (site - m * per_minute) % sites < per_minute:
            return True
    return False


def heartbeat_process(args, out, t0, stop_at):
    recorder = Recorder(out, t0)
    threads = args.hb_threads
    rate = args.hb_sites / args.hb_period  # requests a second, all threads together

    def worker(index):
        client = Client(args.base, args.key)
        mine = list(range(index, args.hb_sites, threads))  # this thread's slice of the fleet
        turn = 0

        def step():
            nonlocal turn
            site = mine[turn % len(mine)]
            turn += 1
            if silent(site, time.monotonic() - t0, args.hb_sites, args.hb_silent):
                return
            body = json.dumps({"site_id": f"site_hb_{site:05d}", "name": f"Soak branch {site}"}).encode()
            sent = time.monotonic()
            try:
                status, data = client.request("POST", "/heartbeat", body)
                ok = status == 200
                detail = None if ok else f"POST /heartbeat answered {status}: {data[:200]!r}"
                ended = len(json.loads(data).get("resolved", [])) if ok else 0
            except (OSError, http.client.HTTPException, ValueError) as e:
                ok, ended, detail = False, 0, f"POST /heartbeat: {e!r}"
            recorder.add("heartbeat", sent, time.monotonic() - sent, ok, ended, detail)

        paced(rate / threads, index / rate, t0, stop_at, step)

    run_threads([lambda i=i: worker(i) for i in range(threads)])
    recorder.close()


# ---- live stream clients ----------------------------------------------------------------------


def stream_process(args, out, t0, stop_at, connected):
    recorder = Recorder(out, t0)
    parts = urllib.parse.urlsplit(args.base)

    async def client(index):
        """One stream client: (re)connects until the end, records every fault event's lag;
        a dropped connection or a `resync` counts as an error and reconnects after 1 s."""
        first = True
        while time.monotonic() < stop_at:
            reason = None
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(parts.hostname, parts.port), TIMEOUT)
                writer.write((f"GET /fault/stream HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                              f"Authorization: Bearer {args.key}\r\nAccept: text/event-stream\r\n\r\n").encode())
                status = await asyncio.wait_for(reader.readline(), TIMEOUT)
                if b" 200 " not in status:
                    raise RuntimeError(f"stream answered {status!r}")
                while (await reader.readline()) not in (b"\r\n", b""):
                    pass
                if first:
                    connected.release()
                    first = False
                reason = await read_events(reader)
                writer.close()
            except (OSError, RuntimeError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as e:
                reason = repr(e)
            if reason and time.monotonic() < stop_at:
                now = time.monotonic()
                recorder.add("stream", now, math.nan, False, 0, f"client {index}: {reason}")
                await asyncio.sleep(1)

    async def read_events(reader):
        """Reads the chunked event stream until the end of the run (None) or a failure (why)."""
        buffer = b""
        while True:
            left = stop_at - time.monotonic()
            if left <= 0:
                return None
            try:
                # 15-s keep-alives arrive on an idle stream; TIMEOUT + 15 s of nothing is an error.
                size_line = await asyncio.wait_for(reader.readline(), min(left, TIMEOUT + 15))
            except asyncio.TimeoutError:
                return None if time.monotonic() >= stop_at else "no data for 25 s"
            size = int(size_line.strip() or b"0", 16)
            if size == 0:
                return "the server ended the stream"
            buffer += await reader.readexactly(size)
            await reader.readexactly(2)
            while b"\n\n" in buffer:
                block, buffer = buffer.split(b"\n\n", 1)
                if b"event: resync" in block:
                    return "resync: " + block.decode(errors="replace")[:200]
                start = block.find(b'"occurred_at":"')
                if not block.startswith(b"id:") or start < 0:
                    continue  # a keep-alive comment
                # The lag is measured on the faults of the ingest above, logged when their
                # request arrived; the detector's outages are logged at their (earlier) start.
                lag = None
                if b'"microservice_id":"soak-monitor"' in block:
                    occurred = datetime.strptime(block[start + 15:start + 42].decode(), "%Y-%m-%dT%H:%M:%S.%fZ")
                    lag = time.time() - occurred.replace(tzinfo=timezone.utc).timestamp()
                recorder.add("stream", time.monotonic(), lag, True)

    async def main():
        await asyncio.gather(*(client(i) for i in range(args.stream_clients)))

    asyncio.run(main())
    recorder.close()


# ---- the coordinator: samples, per-minute rows, summary ---------------------------------------


def status_fields(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.split()[0] if value.split() else ""
    return fields


def cpu_seconds(pid):
    """utime + stime of a process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def size_mb(path):
    try:
        return os.path.getsize(path) / 1e6
    except OSError:
        return 0.0


def sample(args, generator_pids):
    """What the server looks like now."""
    status = status_fields(args.pid)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    by_process = {name: cpu_seconds(pid) for name, pid in generator_pids.items() if os.path.exists(f"/proc/{pid}")}
    by_process["coordinator"] = usage.ru_utime + usage.ru_stime
    return {
        "at": time.monotonic(),
        "rss_mb": int(status["VmRSS"]) / 1024, "hwm_mb": int(status["VmHWM"]) / 1024,
        "threads": int(status["Threads"]), "fds": len(os.listdir(f"/proc/{args.pid}/fd")),
        "db_mb": size_mb(args.db), "wal_mb": size_mb(args.db + "-wal"),
        "server_cpu_s": cpu_seconds(args.pid), "generator_cpu_s": sum(by_process.values()),
        "generator_cpu_by_process_s": by_process,
        "load1": float(open("/proc/loadavg").read().split()[0]),
    }


def percentile(values, p):
    if not values:
        return ""
    values = sorted(values)
    return round(values[min(len(values) - 1, int(p * len(values)))] * 1000, 2)


class Histogram:
    """Latencies of the whole run, in 1%-wide buckets (a run's worth of samples would not fit
    comfortably in lists)."""

    def __init__(self):
        self.buckets, self.n, self.max = {}, 0, 0.0

    def add(self, seconds):
        b = int(math.log(max(seconds, 1e-6) * 1e6) / math.log(1.01))
        self.buckets[b] = self.buckets.get(b, 0) + 1
        self.n += 1
        self.max = max(self.max, seconds)

    def quantile_ms(self, p):
        seen = 0
        for b in sorted(self.buckets):
            seen += self.buckets[b]
            if seen > p * self.n:
                return round(1.01 ** (b + 0.5) / 1000, 2)
        return ""


COLUMNS = (["minute", "elapsed_s", "rss_mb", "hwm_mb", "threads", "fds", "db_mb", "wal_mb", "db_total_mb",
            "server_cpu_pct", "generator_cpu_pct", "load1"]
           + [f"{k}_{c}" for k in KINDS for c in ("n", "err", "p50_ms", "p99_ms")]
           + ["events_ingested", "outages_ended", "stream_events", "stream_reconnects",
              "stream_lag_p50_ms", "stream_lag_p99_ms"])


def row_for(minute, now, before, bucket, args):
    """One CSV row: the sample at the end of `minute`, the minute's CPU use, its requests."""
    seconds = now["at"] - before["at"] if before else 0
    row = {
        "minute": minute, "elapsed_s": round(now["at"] - args.t0), "rss_mb": round(now["rss_mb"], 1),
        "hwm_mb": round(now["hwm_mb"], 1), "threads": now["threads"], "fds": now["fds"],
        "db_mb": round(now["db_mb"], 1), "wal_mb": round(now["wal_mb"], 1),
        "db_total_mb": round(now["db_mb"] + now["wal_mb"], 1), "load1": now["load1"],
        "server_cpu_pct": round(100 * (now["server_cpu_s"] - before["server_cpu_s"]) / seconds, 1) if before else "",
        "generator_cpu_pct": round(100 * (now["generator_cpu_s"] - before["generator_cpu_s"]) / seconds, 1) if before else "",
    }
    if bucket is None:  # minute 0: the server before the load
        return row
    for kind in KINDS:
        ok = [lat for lat, good, _ in bucket[kind] if good]
        row[f"{kind}_n"] = len(bucket[kind])
        row[f"{kind}_err"] = len(bucket[kind]) - len(ok)
        row[f"{kind}_p50_ms"] = percentile(ok, 0.50)
        row[f"{kind}_p99_ms"] = percentile(ok, 0.99)
    row["events_ingested"] = sum(1 for _, good, _ in bucket["ingest"] if good) * args.ingest_batch
    row["outages_ended"] = sum(extra for _, _, extra in bucket["heartbeat"])
    delivered = [lat for lat, good, _ in bucket["stream"] if good]
    lags = [lat for lat in delivered if lat is not None]
    row["stream_events"] = len(delivered)
    row["stream_reconnects"] = len(bucket["stream"]) - len(delivered)
    row["stream_lag_p50_ms"] = percentile(lags, 0.50)
    row["stream_lag_p99_ms"] = percentile(lags, 0.99)
    return row


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", required=True, help="the server, http://127.0.0.1:PORT")
    p.add_argument("--key", required=True, help="an API key with every permission")
    p.add_argument("--pid", type=int, required=True, help="the server's process id")
    p.add_argument("--db", required=True, help="the SQLite database file")
    p.add_argument("--minutes", type=int, default=60)
    p.add_argument("--csv", required=True)
    p.add_argument("--summary", required=True)
    p.add_argument("--ingest-rate", type=float, default=10, help="POST /fault/events requests a second")
    p.add_argument("--ingest-batch", type=int, default=20, help="events a request")
    p.add_argument("--ingest-threads", type=int, default=2)
    p.add_argument("--open-target", type=int, default=500, help="faults each ingest thread keeps open")
    p.add_argument("--list-rate", type=float, default=60, help="GET /fault a second")
    p.add_argument("--get-rate", type=float, default=120, help="GET /fault/{id} a second")
    p.add_argument("--read-threads", type=int, default=2, help="threads for each of list and get")
    p.add_argument("--hb-sites", type=int, default=2000, help="the heartbeat fleet")
    p.add_argument("--hb-period", type=float, default=10, help="seconds between a site's heartbeats")
    p.add_argument("--hb-silent", type=int, default=3, help="sites that fall silent for 90 s each minute")
    p.add_argument("--hb-threads", type=int, default=4)
    p.add_argument("--stream-clients", type=int, default=8)
    args = p.parse_args()

    out = mp.Queue()
    connected = mp.Semaphore(0)
    # Every process works from the same clock: t0 a few seconds ahead, so that the stream
    # clients are connected before the load begins.
    args.t0 = t0 = time.monotonic() + 3
    stop_at = t0 + 60 * args.minutes
    processes = [
        mp.Process(target=stream_process, args=(args, out, t0, stop_at, connected), name="stream"),
        mp.Process(target=ingest_process, args=(args, out, t0, stop_at), name="ingest"),
        mp.Process(target=reads_process, args=(args, out, t0, stop_at), name="reads"),
        mp.Process(target=heartbeat_process, args=(args, out, t0, stop_at), name="heartbeat"),
    ]
    for proc in processes:
        proc.start()
    for _ in range(args.stream_clients):
        if not connected.acquire(timeout=max(0.1, t0 - time.monotonic())):
            sys.exit("soak: the stream clients did not all connect within 3 s")
    pids = {proc.name: proc.pid for proc in processes}

    buckets = {}  # minute -> kind -> [(latency, ok, extra)]
    totals = {kind: Histogram() for kind in KINDS + ["stream"]}
    counts = {kind: [0, 0, 0] for kind in KINDS + ["stream"]}  # requests, errors, extra

    def drain(until):
        """Files the records that arrive before `until` under the minute they were sent in."""
        while True:
            left = until - time.monotonic()
            if left <= 0:
                return
            try:
                items = out.get(timeout=left)
            except queue.Empty:
                return
            for kind, sent, latency, ok, extra in items:
                minute = min(args.minutes, max(1, int(sent // 60) + 1))
                bucket = buckets.setdefault(minute, {k: [] for k in KINDS + ["stream"]})
                bucket[kind].append((latency, ok, extra))
                counts[kind][0] += 1
                counts[kind][1] += not ok
                counts[kind][2] += extra
                if ok and latency is not None:
                    totals[kind].add(latency)

    with open(args.csv, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        drain(t0)
        before = sample(args, pids)
        writer.writerow(row_for(0, before, None, None, args))
        f.flush()
        samples = [before]
        for minute in range(1, args.minutes + 1):
            drain(t0 + 60 * minute)
            if not os.path.exists(f"/proc/{args.pid}"):
                sys.exit(f"soak: the server (pid {args.pid}) is gone at minute {minute}")
            now = sample(args, pids)
            samples.append(now)
            if minute == args.minutes:
                # The load processes end at stop_at; their last requests within TIMEOUT.
                for proc in processes:
                    while proc.is_alive():
                        drain(time.monotonic() + 0.5)
                    proc.join()
                drain(time.monotonic() + 1)
            else:
                drain(t0 + 60 * minute + GRACE)
            row = row_for(minute, now, before, buckets.pop(minute, {k: [] for k in KINDS + ["stream"]}), args)
            writer.writerow(row)
            f.flush()
            print("soak: minute %(minute)s: RSS %(rss_mb)s MB, DB+WAL %(db_total_mb)s MB, server CPU "
                  "%(server_cpu_pct)s%%, generator %(generator_cpu_pct)s%%, p99 ms ingest %(ingest_p99_ms)s "
                  "list %(list_p99_ms)s get %(get_p99_ms)s heartbeat %(heartbeat_p99_ms)s, stream lag "
                  "%(stream_lag_p99_ms)s, errors %(errors)s" % dict(row, errors=sum(
                      row[f"{k}_err"] for k in KINDS) + row["stream_reconnects"]), flush=True)
            before = now

    first, last = samples[0], samples[-1]
    seconds = last["at"] - first["at"]
    summary = {
        "minutes": args.minutes,
        "rates": {
            "ingest_requests_per_s": args.ingest_rate, "ingest_batch": args.ingest_batch,
            "ingest_events_per_s": args.ingest_rate * args.ingest_batch, "open_target": args.open_target * args.ingest_threads,
            "list_per_s": args.list_rate, "get_per_s": args.get_rate,
            "heartbeat_sites": args.hb_sites, "heartbeat_period_s": args.hb_period,
            "heartbeats_per_s": args.hb_sites / args.hb_period, "silent_sites_per_minute": args.hb_silent,
            "stream_clients": args.stream_clients,
        },
        "kinds": {
            kind: {"requests": counts[kind][0], "errors": counts[kind][1], "extra": counts[kind][2],
                   "p50_ms": totals[kind].quantile_ms(0.50), "p99_ms": totals[kind].quantile_ms(0.99),
                   "max_ms": round(totals[kind].max * 1000, 1)}
            for kind in KINDS + ["stream"]
        },
        "server_cpu_pct": round(100 * (last["server_cpu_s"] - first["server_cpu_s"]) / seconds, 1),
        "generator_cpu_pct": round(100 * (last["generator_cpu_s"] - first["generator_cpu_s"]) / seconds, 1),
        "generator_cpu_pct_by_process": {
            name: round(100 * (cpu - first["generator_cpu_by_process_s"].get(name, 0)) / seconds, 1)
            for name, cpu in last["generator_cpu_by_process_s"].items()
        },
        "hwm_mb": round(last["hwm_mb"], 1),
    }
    with open(args.summary, "w") as f:
        json.dump(summary, f, indent=2)


if __name__ == "__main__":
    main()
