"""Time to an interactive console fault list, in headless Chromium through chromedriver.

Signs in through the console's form with KEY, then ROUNDS times navigates to /console#/faults
(a new document each time) and reads the `faultline:list-rendered` performance mark: the
moment the first page of faults is on screen with its handlers attached, in milliseconds
since navigation started. Also records the document's and script's transfer sizes.
Prints one JSON object. Every process it starts is stopped when it exits.

    python3 bench/console_load.py BASE KEY [ROUNDS]
"""

import json
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


class Driver:
    def __init__(self, port=9531):
        self.base = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen([CHROMEDRIVER, f"--port={port}"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                urllib.request.urlopen(self.base + "/status", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        options = {"binary": CHROMIUM, "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                                                "--window-size=1440,900"]}
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": options}}}
        self.session = self.call("POST", "/session", caps)["sessionId"]

    def call(self, method, path, body=None):
        data = json.dumps(body if body is not None else {}).encode() if method == "POST" else None
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                return json.loads(answer.read())["value"]
        except urllib.error.HTTPError as err:
            raise RuntimeError(err.read().decode()[:300]) from None

    def s(self, method, path, body=None):
        return self.call(method, f"/session/{self.session}{path}", body)

    def js(self, script, *args):
        return self.s("POST", "/execute/sync", {"script": script, "args": list(args)})

    def wait(self, script, timeout=20):
        end = time.time() + timeout
        while time.time() < end:
            value = self.js(script)
            if value is not None and value is not False:
                return value
            time.sleep(0.02)
        raise RuntimeError("timed out waiting for " + script)

    def close(self):
        try:
            self.call("DELETE", f"/session/{self.session}")
        finally:
            self.proc.terminate()


def main():
    base, key = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 7
    driver = Driver()
    try:
        driver.s("POST", "/url", {"url": base + "/console"})
        element = driver.s("POST", "/element", {"using": "css selector", "value": "#api-key"})
        element_id = list(element.values())[0]
        driver.s("POST", f"/element/{element_id}/value", {"text": key})
        button = list(driver.s("POST", "/element", {"using": "css selector", "value": "#sign-in"}).values())[0]
        driver.s("POST", f"/element/{button}/click")
        driver.wait("return document.querySelector('table#faults tbody tr') !== null")
        times = []
        for _ in range(rounds):
            # A fresh document each round: about:blank first, so the console is not a hash change.
            driver.s("POST", "/url", {"url": "about:blank"})
            driver.s("POST", "/url", {"url": base + "/console#/faults"})
            mark = driver.wait(
                "var m = performance.getEntriesByName('faultline:list-rendered');"
                "return m.length ? m[0].startTime : null;")
            rows = driver.js("return document.querySelectorAll('table#faults tbody tr').length")
            if rows < 1:
                raise RuntimeError("the list rendered no rows")
            times.append(mark)
        sizes = driver.js(
            "return performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource'))"
            ".map(function (e) { return [e.name, e.decodedBodySize]; })")
        print(json.dumps({"rounds": rounds, "median_ms": statistics.median(times), "min_ms": min(times),
                          "max_ms": max(times), "times_ms": times, "sizes": sizes}))
    finally:
        driver.close()


if __name__ == "__main__":
    main()
