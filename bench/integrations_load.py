"""An Alertmanager payload of 1,000 firing alerts against the same 1,000 events on
POST /fault/events, on one server: each payload of new alerts (new fingerprints on new
resources, so each opens 1,000 faults), sent one at a time, the two kinds alternating.
Prints one JSON object: the median and each time in milliseconds of both, and their ratio.

    integrations_load.py BASE KEY [ROUNDS]
"""
import http.client
import json
import random
import statistics
import sys
import time
import urllib.parse

base, key = sys.argv[1], sys.argv[2]
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 10
url = urllib.parse.urlsplit(base)
conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
prefix = f"il{random.randrange(10**9)}"
headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
severities = ["critical", "error", "warning", "info"]


def alertmanager(r):
    alerts = [{
        "status": "firing",
        "labels": {"alertname": "NodeDown", "instance": f"{prefix}-am{r}-{i}", "site": f"site_{i % 200}",
                   "severity": severities[i % 4]},
        "annotations": {"summary": f"node {i} down", "description": "no scrape"},
        "startsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": f"{prefix}{r:04d}{i:05d}",
    } for i in range(1000)]
    return "/integrations/alertmanager", {"version": "4", "status": "firing", "receiver": "faultline",
                                          "groupKey": "{}:{}", "alerts": alerts}


def events(r):
    evs = [{"action": "trigger", "resource_id": f"{prefix}-ev{r}-{i}", "type": "nodedown",
            "severity": ["CRITICAL", "HIGH", "WARNING", "LOW"][i % 4], "message": f"node {i} down",
            "cause": "no scrape", "microservice_id": "alertmanager",
            "resource_ancestry_path": f"site_{i % 200}|{prefix}-ev{r}-{i}"} for i in range(1000)]
    return "/fault/events", {"events": evs}


times = {"alertmanager": [], "events": []}
for r in range(rounds):
    for name, make in (("alertmanager", alertmanager), ("events", events)):
        path, body = make(r)
        data = json.dumps(body)
        start = time.perf_counter()
        conn.request("POST", path, data, headers)
        response = conn.getresponse()
        response.read()
        elapsed = (time.perf_counter() - start) * 1000
        assert response.status == 200, (path, response.status)
        times[name].append(round(elapsed, 1))
median = {k: round(statistics.median(v), 1) for k, v in times.items()}
print(json.dumps({"alertmanager_ms": median["alertmanager"], "events_ms": median["events"],
                  "ratio": round(median["alertmanager"] / median["events"], 2), "rounds": rounds, "times": times}))
