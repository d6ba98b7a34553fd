#!/usr/bin/env python3
"""Stream fan-out load: CLIENTS connections to GET /fault/stream (on --stream, which may be
another replica than --post), and one producer posting batches of BATCH trigger events to
POST /fault/events at RATE events per second for SECONDS. Prints one JSON line: events
produced, events delivered to all clients, deliveries per second, the latency from the log's
`occurred_at` to arrival (p50/p99/max, ms), and clients cut off with `resync`.

Standard library only (asyncio, raw HTTP/1.1), bounded in time and connections."""

import argparse
import asyncio
import json
import statistics
import time
import urllib.parse
from datetime import datetime


def parse_time(text):
    # 2026-11-28T22:36:04.122634Z
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()


class Tally:
    def __init__(self):
        self.delivered = 0
        self.latencies = []
        self.resyncs = 0
        self.connected = 0
        self.sample_every = 1


async def subscriber(url, key, tally, stop):
    parts = urllib.parse.urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(
        (f"GET /fault/stream HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: Bearer {key}\r\n"
         "Accept: text/event-stream\r\n\r\n").encode()
    )
    await writer.drain()
    status = await reader.readline()
    if b" 200 " not in status:
        raise RuntimeError(f"stream answered {status!r}")
    while (await reader.readline()) not in (b"\r\n", b""):
        pass
    tally.connected += 1
    buffer = b""
    seen = 0
    try:
        while not stop.is_set():
            size_line = await reader.readline()
            if not size_line:
                return
            size = int(size_line.strip() or b"0", 16)
            if size == 0:
                return
            buffer += await reader.readexactly(size)
            await reader.readexactly(2)
            while b"\n\n" in buffer:
                block, buffer = buffer.split(b"\n\n", 1)
                if b"event: resync" in block:
                    tally.resyncs += 1
                    return
                if b"event: fault.created" not in block:
                    continue
                tally.delivered += 1
                seen += 1
                if seen % tally.sample_every == 0:
                    start = block.find(b'"occurred_at":"') + 15
                    occurred = parse_time(block[start:start + 27].decode())
                    tally.latencies.append((time.time() - occurred) * 1000)
    finally:
        writer.close()


async def producer(url, key, rate, batch, seconds):
    parts = urllib.parse.urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    produced, n = 0, 0
    # Resources new to this run: a trigger for one still open from an earlier run would
    # deduplicate, and send no `fault.created`.
    run = f"{time.time_ns() % 10**12:x}"
    interval = batch / rate
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        tick = time.monotonic()
        events = []
        for _ in range(batch):
            n += 1
            events.append({"action": "trigger", "resource_id": f"fan_{run}_{n}", "type": "wantunnel",
                           "severity": "LOW", "message": "fan-out load"})
        body = json.dumps({"events": events}).encode()
        writer.write(
            (f"POST /fault/events HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: Bearer {key}\r\n"
             f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
        )
        await writer.drain()
        status = await reader.readline()
        length = 0
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b""):
                break
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        if b" 200 " not in status:
            raise RuntimeError(f"ingest answered {status!r}")
        produced += batch
        await asyncio.sleep(max(0.0, interval - (time.monotonic() - tick)))
    writer.close()
    return produced, time.monotonic() - started


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--stream", required=True, help="base URL the clients connect to")
    p.add_argument("--post", required=True, help="base URL the producer posts to")
    p.add_argument("--key", required=True)
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--rate", type=float, default=100.0, help="events produced per second")
    p.add_argument("--batch", type=int, default=10)
    p.add_argument("--seconds", type=float, default=10.0)
    args = p.parse_args()

    tally = Tally()
    # Sample latencies so that timing itself does not dominate the client's work.
    tally.sample_every = max(1, args.clients // 50)
    stop = asyncio.Event()
    clients = [asyncio.create_task(subscriber(args.stream, args.key, tally, stop)) for _ in range(args.clients)]
    deadline = time.monotonic() + 30
    while tally.connected < args.clients:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {tally.connected} of {args.clients} clients connected in 30 s")
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    produced, took = await producer(args.post, args.key, args.rate, args.batch, args.seconds)
    # Let the last events arrive (bounded).
    expected = produced * args.clients
    settle = time.monotonic() + 10
    while tally.delivered < expected and time.monotonic() < settle and tally.resyncs == 0:
        await asyncio.sleep(0.1)
    elapsed = took + (time.monotonic() - settle + 10)
    stop.set()
    for c in clients:
        c.cancel()
    await asyncio.gather(*clients, return_exceptions=True)
    lat = sorted(tally.latencies) or [float("nan")]
    print(json.dumps({
        "clients": args.clients, "produced": produced, "expected": expected, "delivered": tally.delivered,
        "deliveries_per_s": round(tally.delivered / elapsed), "produce_seconds": round(took, 2),
        "latency_ms_p50": round(statistics.median(lat), 1),
        "latency_ms_p99": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 1),
        "latency_ms_max": round(lat[-1], 1), "resyncs": tally.resyncs,
    }))


if __name__ == "__main__":
    asyncio.run(main())
