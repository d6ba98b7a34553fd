#!/usr/bin/env python3
"""Crash loop: SIGKILL `faultline serve` during concurrent writes, restart it, check what it kept.

Each run starts the server on a fresh database (a SQLite file, or a PostgreSQL schema; on a
fifth of runs `faultline migrate` is killed first, mid-migration if it is slow enough), then
`--kills` times over: several writer threads send POST /fault, POST /fault/events batches,
comments, resolves (with a comment), DELETEs, token mints and revocations, each marked so it can
be found again, some with an Idempotency-Key; at a seeded moment the server gets SIGKILL. Then:

- on the database as the crash left it (a copy of the SQLite file and its log; the PostgreSQL
  schema): `PRAGMA integrity_check` and `foreign_key_check` (SQLite), and the store's own
  invariants: each fault has its one `created` log entry, `resolved` entries and `resolved_at`
  match the status, `comment_count` and `commented` entries match the comments, a fault's
  ancestry elements are exactly its path's, no element or comment without its fault, no open
  key on a resolved fault, one short link per access token;
- the server is restarted on the same database (on some restarts it is killed again within its
  first 200 ms, then started once more), every fault and token is read back through the API, and
  the result is compared with a model of every write: each acknowledged (2xx) write is there, a
  write that was not acknowledged is there wholly or not at all (a batch's faults and resolves
  all or none; a resolve and its comment both or neither), nothing else appeared, nothing seen
  after an earlier restart went missing, and each token whose JWT is known reads while active
  and is refused once revoked;
- every write sent with an Idempotency-Key is sent again: an acknowledged one replays its first
  answer; an unacknowledged one replays exactly when its effect was found, and runs otherwise.

After the last cycle the server is stopped with SIGTERM and the checks run again on the live
file. Runs alternate between backends. A run's parameters (op mix, batch sizes, kill moments)
come from its seed; thread scheduling does not, so a seed reproduces a run's shape, not its
exact interleaving. Prints a line per run and a summary; exits 1 on any violation, naming the
seed and command that reproduce the run.

`--self-test` runs one run per deliberate sabotage of the database between a kill and the
restart (an acknowledged fault removed, half a batch, a lost comment, ...) and fails unless the
check meant to catch each one does: proof that the checks can fail.

Python 3.11 standard library only; `psql` for PostgreSQL.
"""

from __future__ import annotations

import argparse
import collections
import http.client
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field

PG_BASE_DEFAULT = "postgres://postgres@127.0.0.1:5432/test"
SEVERITIES = ["LOW", "MEDIUM", "HIGH", "CRITICAL", "WARNING"]
SINGLE_TYPE = "crash-single"
BATCH_TYPE = "crash-batch"
HTTP_TIMEOUT = 15.0
START_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0
SETTLE_TIMEOUT = 30.0
WRITER_MAX_OPS = 20_000
TOKENS_PER_RUN = 90  # GET /fault/token lists at most 100
SABOTAGES = {
    # name: (what it does, the check that must catch it)
    "lose-acked-fault": ("removes an acknowledged fault and all its rows", "acked-fault-missing"),
    "half-batch": ("removes one fault of an applied batch and forgets the batch's answer", "batch-not-atomic"),
    "lose-comment": ("removes an acknowledged comment, its log entry and its count", "acked-comment-missing"),
    "half-resolve": ("removes a resolve's comment and forgets its answer", "resolve-not-atomic"),
    "orphan-ancestor": ("removes a fault's row alone", "db-orphan-ancestors"),
    "count-drift": ("adds one to a fault's comment_count", "db-comment-count"),
    "forget-idempotency": ("removes every stored idempotent answer", "idempotent-replay"),
    "phantom-fault": ("inserts a fault nobody sent", "unexpected-fault"),
    "lose-token": ("removes an acknowledged access token and its short link", "acked-token-missing"),
    "drop-created-event": ("removes a fault's 'created' log entry", "db-created-event"),
    "unrevoke": ("clears an acknowledged revocation", "acked-revoke-missing"),
    "corrupt-index": ("overwrites bytes of an index page of the SQLite file", "db-integrity-check"),
}


class Violation(Exception):
    """A broken invariant: the run fails."""


class NothingToSabotage(Exception):
    """The cycle offered nothing for the sabotage to break (--self-test tries another seed)."""


# ---------------------------------------------------------------------------------------------
# HTTP


class Api:
    """One keep-alive connection to the server; a failed request drops it."""

    def __init__(self, port: int, key: str):
        self.port = port
        self.key = key
        self.conn: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def request(self, method: str, path: str, body: bytes | None = None, idem_key: str | None = None):
        """(status, headers, parsed JSON or None); raises OSError/HTTPException on a broken exchange."""
        headers = {"Authorization": f"Bearer {self.key}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if idem_key is not None:
            headers["Idempotency-Key"] = idem_key
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=HTTP_TIMEOUT)
        try:
            self.conn.request(method, path, body=body, headers=headers)
            response = self.conn.getresponse()
            raw = response.read()
        except BaseException:
            self.close()
            raise
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode(errors="replace")
        return response.status, {k.lower(): v for k, v in response.getheaders()}, parsed


# ---------------------------------------------------------------------------------------------
# The model: what the database must hold


@dataclass
class Fault:
    id: str
    resource_id: str
    type: str
    owner: int  # the writer thread that created it and alone writes to it
    status: str = "unresolved"
    comments: list[str] = field(default_factory=list)


@dataclass
class Token:
    id: str
    label: str
    owner: int
    revoked: bool = False
    jwt: str | None = None  # known when an answer carried it


@dataclass
class Model:
    faults: dict[str, Fault] = field(default_factory=dict)
    tokens: dict[str, Token] = field(default_factory=dict)


@dataclass
class Op:
    kind: str  # create | batch | comment | resolve | delete | mint | revoke
    thread: int
    marker: str
    method: str
    path: str
    body: bytes | None
    idem_key: str | None = None
    target: str | None = None  # fault id (comment, resolve, delete); token id (revoke)
    text: str | None = None  # comment text (comment, resolve); label (mint)
    resource_id: str | None = None  # create
    triggers: list[str] = field(default_factory=list)  # batch: new resource ids, in order
    resolves: list[str] = field(default_factory=list)  # batch: fault ids it resolves, in order
    acked: bool = False
    status: int | None = None
    response: object = None
    error: str | None = None
    applied: bool | None = None  # decided by the verification for unacknowledged ops


class Writer(threading.Thread):
    """Sends seeded random writes against faults it owns until told to stop."""

    def __init__(self, tid: int, port: int, key: str, rng: random.Random, stop: threading.Event,
                 prefix: str, model: Model, deadline: float, writers: int):
        super().__init__(daemon=True)
        self.tid = tid
        self.api = Api(port, key)
        self.rng = rng
        self.stop = stop
        self.prefix = prefix
        self.deadline = deadline
        self.ops: list[Op] = []
        self.unexpected: list[str] = []
        mine = [f for f in model.faults.values() if f.owner == tid]
        self.singles = [f.id for f in mine if f.type == SINGLE_TYPE and f.status == "unresolved"]
        self.batch_open = [(f.id, f.resource_id) for f in mine if f.type == BATCH_TYPE and f.status == "unresolved"]
        self.commentable = [f.id for f in mine]
        self.live_tokens = [t.id for t in model.tokens.values() if t.owner == tid and not t.revoked]
        self.mints_left = TOKENS_PER_RUN // writers - sum(t.owner == tid for t in model.tokens.values())
        self.weights = [("create", 6), ("batch", 4), ("comment", 6), ("resolve", 2), ("delete", 2),
                        ("mint", 1), ("revoke", 1)]

    def run(self) -> None:
        try:
            for n in range(WRITER_MAX_OPS):
                if self.stop.is_set() or time.monotonic() > self.deadline:
                    break
                op = self.next_op(f"{self.prefix}t{self.tid}n{n}")
                if op is None:
                    continue
                self.send(op)
        except Exception as e:  # an answer of an unexpected shape: fail the run, not the thread
            self.unexpected.append(f"{type(e).__name__}: {e}")
            self.stop.set()
        finally:
            self.api.close()

    def pick(self, pool: list):
        return pool.pop(self.rng.randrange(len(pool)))

    def next_op(self, marker: str) -> Op | None:
        kinds, weights = zip(*self.weights)
        kind = self.rng.choices(kinds, weights)[0]
        idem = f"idem-{marker}" if self.rng.random() < 0.4 else None
        if kind == "create":
            rid = f"res-{marker}"
            body = {"resource_id": rid, "type": SINGLE_TYPE, "severity": self.rng.choice(SEVERITIES),
                    "message": f"crash loop {marker}", "cause": "crash loop",
                    "resource_ancestry_path": f"site_crash{self.tid}|dev_{marker}"}
            return Op("create", self.tid, marker, "POST", "/fault", dumps(body), idem, resource_id=rid)
        if kind == "batch":
            count = self.rng.randint(1, 40)
            triggers = [f"bat-{marker}-{i}" for i in range(count)]
            events = [{"action": "trigger", "resource_id": rid, "type": BATCH_TYPE,
                       "severity": self.rng.choice(SEVERITIES), "message": f"crash batch {marker}",
                       "resource_ancestry_path": f"site_crash{self.tid}|{rid}"} for rid in triggers]
            targets = [self.pick(self.batch_open) for _ in range(min(len(self.batch_open), self.rng.randint(0, 8)))]
            events += [{"action": "resolve", "resource_id": rid, "type": BATCH_TYPE} for _, rid in targets]
            return Op("batch", self.tid, marker, "POST", "/fault/events", dumps({"events": events}), idem,
                      triggers=triggers, resolves=[fid for fid, _ in targets])
        if kind == "comment" and self.commentable:
            target = self.rng.choice(self.commentable)
            text = f"comment {marker}"
            return Op("comment", self.tid, marker, "POST", f"/fault/{target}/comment",
                      dumps({"comment": text}), idem, target=target, text=text)
        if kind == "resolve" and self.singles:
            target = self.pick(self.singles)
            text = f"resolved {marker}"
            return Op("resolve", self.tid, marker, "POST", f"/fault/{target}/resolve",
                      dumps({"comment": text}), idem, target=target, text=text)
        if kind == "mint" and self.mints_left > 0:
            self.mints_left -= 1
            label = f"token {marker}"
            return Op("mint", self.tid, marker, "POST", "/fault/token",
                      dumps({"expire_after_minutes": 600, "label": label}), idem, text=label)
        if kind == "revoke" and self.live_tokens:
            target = self.pick(self.live_tokens)
            return Op("revoke", self.tid, marker, "DELETE", f"/fault/token/{target}", None, target=target)
        if kind == "delete" and self.singles:
            target = self.pick(self.singles)
            self.commentable.remove(target)
            return Op("delete", self.tid, marker, "DELETE", f"/fault/{target}", None, target=target)
        return None

    def send(self, op: Op) -> None:
        self.ops.append(op)
        try:
            op.status, _, op.response = self.api.request(op.method, op.path, op.body, op.idem_key)
        except (OSError, http.client.HTTPException) as e:
            op.error = type(e).__name__
            self.stop.set()  # the server is gone (or broken): every writer stops
            return
        if op.status >= 500:
            return  # unacknowledged: the verification decides whether it happened
        if op.status >= 400:
            self.unexpected.append(f"{op.kind} {op.marker}: {op.status} {op.response}")
            self.stop.set()
            return
        op.acked = True
        if op.kind == "create":
            self.singles.append(op.response["id"])
            self.commentable.append(op.response["id"])
        elif op.kind == "mint":
            self.live_tokens.append(op.response["id"])
        elif op.kind == "batch":
            results = op.response["results"]
            outcomes = [r["outcome"] for r in results]
            expected = ["created"] * len(op.triggers) + ["resolved"] * len(op.resolves)
            if outcomes != expected or [r["fault_id"] for r in results[len(op.triggers):]] != op.resolves:
                self.unexpected.append(f"batch {op.marker}: outcomes {outcomes} (expected {expected})")
            for result, rid in zip(results, op.triggers):
                self.batch_open.append((result["fault_id"], rid))
                self.commentable.append(result["fault_id"])


def dumps(value) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


# ---------------------------------------------------------------------------------------------
# Databases


class Database:
    """A fresh database for one run, and SQL on it outside the server."""

    backend: str
    url: str

    def query(self, sql: str) -> list[tuple]:
        raise NotImplementedError

    def execute(self, sql: str) -> None:
        raise NotImplementedError

    def settle(self) -> float:
        """Wait until nothing the killed server started can still commit; returns the wait."""
        return 0.0

    def crash_checks(self) -> list[str]:
        raise NotImplementedError

    def final_checks(self) -> list[str]:
        raise NotImplementedError

    def drop(self) -> None:
        raise NotImplementedError


class SqliteDb(Database):
    backend = "sqlite"

    def __init__(self, workdir: str):
        self.path = os.path.join(workdir, "faultline.db")
        self.url = f"sqlite://{self.path}"

    def _connect(self, path: str | None = None) -> sqlite3.Connection:
        return sqlite3.connect(path or self.path, timeout=10, isolation_level=None)

    def query(self, sql: str, path: str | None = None) -> list[tuple]:
        conn = self._connect(path)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()

    def execute(self, sql: str) -> None:
        conn = self._connect()
        try:
            conn.executescript(sql)
        finally:
            conn.close()

    def _checks(self, path: str) -> list[str]:
        conn = self._connect(path)
        try:
            problems = []
            try:
                integrity = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
            except sqlite3.DatabaseError as e:
                return [f"db-integrity-check: {e}"]
            if integrity != ["ok"]:
                problems.append(f"db-integrity-check: {integrity[:5]}")
            foreign = conn.execute("PRAGMA foreign_key_check").fetchall()
            if foreign:
                problems.append(f"db-foreign-key-check: {foreign[:5]}")
            problems += invariant_checks(lambda sql: conn.execute(sql).fetchall())
            seq = conn.execute("SELECT a.fault_id FROM fault_ancestors a JOIN faults f ON f.id = a.fault_id "
                               "WHERE a.fault_seq <> f.seq LIMIT 5").fetchall()
            if seq:
                problems.append(f"db-fault-seq: elements whose fault_seq is not their fault's: {seq}")
            return problems
        finally:
            conn.close()

    def crash_checks(self) -> list[str]:
        # On a copy of the file and its log as the kill left them, so the server's own recovery
        # on restart starts from exactly that state.
        snapshot = tempfile.mkdtemp(prefix="crash-snapshot-", dir=os.path.dirname(self.path))
        try:
            copy = os.path.join(snapshot, "faultline.db")
            shutil.copyfile(self.path, copy)
            if os.path.exists(self.path + "-wal"):
                shutil.copyfile(self.path + "-wal", copy + "-wal")
            return self._checks(copy)
        finally:
            shutil.rmtree(snapshot, ignore_errors=True)

    def final_checks(self) -> list[str]:
        return self._checks(self.path)

    def drop(self) -> None:
        pass  # the run's temporary directory goes with it


class PostgresDb(Database):
    backend = "postgres"

    def __init__(self, base: str, schema: str):
        self.base = base
        self.schema = schema
        sep = "&" if "?" in base else "?"
        self.psql_url = f"{base}{sep}options=-c%20search_path%3D{schema}"
        # The server's connections carry the schema's name, so settle() can find them.
        self.url = f"{self.psql_url}&application_name={schema}"
        psql(base, f'CREATE SCHEMA "{schema}"')

    def query(self, sql: str) -> list[tuple]:
        out = psql(self.psql_url, sql)
        return [tuple(line.split("\t")) for line in out.splitlines() if line]

    def execute(self, sql: str) -> None:
        psql(self.psql_url, sql)

    def settle(self) -> float:
        # A backend outlives its killed client until it next reads from the socket: a statement
        # or a COMMIT that the server sent before the kill still runs, and may commit. Until
        # those backends are gone the database is not yet in its crash state.
        started = time.monotonic()
        while time.monotonic() - started < SETTLE_TIMEOUT:
            rows = psql(self.base, "SELECT COUNT(*) FROM pg_stat_activity "
                                   f"WHERE application_name = '{self.schema}'").strip()
            if rows == "0":
                return time.monotonic() - started
            time.sleep(0.02)
        raise Violation(f"connections of the killed server still open {SETTLE_TIMEOUT:.0f}s after the kill")

    def crash_checks(self) -> list[str]:
        return invariant_checks(self.query)

    def final_checks(self) -> list[str]:
        return invariant_checks(self.query)

    def drop(self) -> None:
        psql(self.base, f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')


def psql(url: str, sql: str) -> str:
    result = subprocess.run(["psql", url, "-XAtq", "-v", "ON_ERROR_STOP=1", "-F", "\t", "-c", sql],
                            capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"psql failed: {result.stderr.strip()}")
    return result.stdout


def invariant_checks(query) -> list[str]:
    """The store's invariants, from a few aggregate queries that both backends run unchanged
    (one pass over each table, so the check stays linear in the data)."""
    faults = {r[0]: r[1:] for r in query(
        "SELECT id, resource_id, resource_ancestry_path, status, "
        "CASE WHEN resolved_at IS NULL THEN 0 ELSE 1 END, CASE WHEN open_key IS NULL THEN 0 ELSE 1 END, "
        "comment_count FROM faults")}
    events = collections.Counter()
    for fid, kind, n in query("SELECT fault_id, kind, COUNT(*) FROM fault_events GROUP BY fault_id, kind"):
        events[fid, kind] = int(n)
    logged = {fid for fid, _ in events}
    comments = {r[0]: int(r[1]) for r in query("SELECT fault_id, COUNT(*) FROM comments GROUP BY fault_id")}
    elements = {r[0]: int(r[1]) for r in query("SELECT fault_id, COUNT(*) FROM fault_ancestors GROUP BY fault_id")}
    found: dict[str, list[str]] = collections.defaultdict(list)
    for fid, (rid, path, status, has_resolved_at, has_open_key, comment_count) in faults.items():
        resolved = status == "resolved"
        if events[fid, "created"] != 1:
            found["db-created-event: faults without exactly one 'created' log entry"].append(fid)
        if resolved != (int(has_resolved_at) == 1):
            found["db-resolved-at: faults whose status and resolved_at disagree"].append(fid)
        if resolved != (events[fid, "resolved"] > 0):
            found["db-resolved-event: faults whose status and 'resolved' log entries disagree"].append(fid)
        if resolved and int(has_open_key) == 1:
            found["db-open-key: resolved faults still holding an open key"].append(fid)
        if int(comment_count) != comments.get(fid, 0):
            found["db-comment-count: faults whose comment_count is not their number of comments"].append(fid)
        if events[fid, "commented"] != comments.get(fid, 0):
            found["db-commented-event: faults whose 'commented' log entries are not their comments"].append(fid)
        if elements.get(fid, 0) != len(dict.fromkeys(path.split("|") + [rid])):
            found["db-ancestor-count: faults without exactly their ancestry elements"].append(fid)
        if events[fid, "deleted"] or events[fid, "expired"]:
            found["db-deleted-present: faults logged as deleted that still exist"].append(fid)
    for fid in comments:
        if fid not in faults:
            found["db-orphan-comments: comments without their fault"].append(fid)
    for fid in elements:
        if fid not in faults:
            found["db-orphan-ancestors: ancestry elements without their fault"].append(fid)
    for fid in logged:
        if fid not in faults and events[fid, "created"] and not (events[fid, "deleted"] or events[fid, "expired"]):
            found["db-vanished: faults logged as created, gone without a 'deleted' or 'expired' entry"].append(fid)
    for tid, links in query("SELECT t.id, (SELECT COUNT(*) FROM short_links l WHERE l.token_id = t.id) "
                            "FROM access_tokens t"):
        if int(links) != 1:
            found["db-token-link: access tokens without exactly one short link"].append(tid)
    return [f"{what}: {len(ids)}, e.g. {sorted(ids)[:3]}" for what, ids in found.items()]


# ---------------------------------------------------------------------------------------------
# The server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, binary: str, db: Database, workdir: str):
        self.binary = binary
        self.db = db
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.key: str | None = None
        self.starts = 0

    def spawn(self) -> None:
        self.starts += 1
        self.port = free_port()
        out = open(os.path.join(self.workdir, f"stdout-{self.starts}"), "wb")
        err = open(os.path.join(self.workdir, "server.log"), "ab")
        env = dict(os.environ, FAULTLINE_LOG="warn")
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--listen", f"127.0.0.1:{self.port}", "--database-url", self.db.url,
             # The public URL is the tokens' issuer: the same across restarts, whatever the port.
             "--public-url", "http://crash-loop.test",
             "--rate-limit", "1000000000", "--token-rate-limit", "1000000000"], stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env)
        out.close()
        err.close()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        port_retries = 3
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                if "cannot listen" in self.log_tail() and port_retries > 0:
                    port_retries -= 1  # another process took the free port first
                    self.spawn()
                    continue
                raise Violation(f"server exited with {self.proc.returncode} at start: {self.log_tail()}")
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            try:
                conn.request("GET", "/readyz")
                if conn.getresponse().status == 200:
                    break
            except (OSError, http.client.HTTPException):
                pass
            finally:
                conn.close()
            time.sleep(0.02)
        else:
            raise Violation(f"server not ready within {START_TIMEOUT:.0f}s: {self.log_tail()}")
        if self.key is None:
            with open(os.path.join(self.workdir, f"stdout-{self.starts}")) as f:
                self.key = f.readline().strip()
            if not self.key.startswith("flk_"):
                raise Violation("first start printed no admin key")

    def start(self) -> None:
        self.spawn()
        self.wait_ready()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=STOP_TIMEOUT)
        self.proc = None

    def stop(self) -> None:
        """SIGTERM and a clean exit within the deadline, else SIGKILL and a violation."""
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            raise Violation(f"server did not stop within {STOP_TIMEOUT:.0f}s of SIGTERM")
        self.proc = None
        if code != 0:
            raise Violation(f"server exited with {code} after SIGTERM: {self.log_tail()}")

    def log_tail(self) -> str:
        try:
            with open(os.path.join(self.workdir, "server.log"), errors="replace") as f:
                return " | ".join(f.read().splitlines()[-5:])
        except OSError:
            return ""


def migrate_and_kill(binary: str, db: Database, delay: float) -> bool:
    """Run `faultline migrate` on the fresh database and SIGKILL it after `delay` s; True if it was cut."""
    proc = subprocess.Popen([binary, "migrate", "--database-url", db.url], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        proc.wait(timeout=delay)
        return False
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=STOP_TIMEOUT)
        return True


# ---------------------------------------------------------------------------------------------
# Verification


def read_all_faults(api: Api, deadline: float) -> dict[str, dict]:
    faults: dict[str, dict] = {}
    cursor = None
    while True:
        if time.monotonic() > deadline:
            raise Violation("reading the faults back took too long")
        path = "/fault?limit=100" + (f"&cursor={urllib.parse.quote(cursor)}" if cursor else "")
        status, _, body = api.request("GET", path)
        if status != 200:
            raise Violation(f"GET {path}: {status} {body}")
        for f in body["data"]:
            if f["id"] in faults:
                raise Violation(f"fault {f['id']} listed twice")
            faults[f["id"]] = f
        cursor = body["meta"]["cursor"]
        if not body["meta"]["has_more"]:
            return faults


def verify_faults(model: dict[str, Fault], ops: list[Op], seen: dict[str, dict]) -> tuple[list[str], dict[str, Fault]]:
    """Compare the faults the restarted server holds with the model and the cycle's writes.

    Returns the violations and the new model (what was seen, for the next cycle)."""
    problems: list[str] = []

    def fail(check: str, message: str) -> None:
        problems.append(f"{check}: {message}")

    by_resource: dict[str, list[str]] = collections.defaultdict(list)
    for f in seen.values():
        by_resource[f["resource_id"]].append(f["id"])
    accounted: dict[str, Fault] = {}
    deletes = {op.target: op for op in ops if op.kind == "delete"}
    resolvers: dict[str, list[Op]] = collections.defaultdict(list)
    new_comments: dict[str, list[Op]] = collections.defaultdict(list)
    for op in ops:
        if op.kind == "resolve":
            resolvers[op.target].append(op)
            new_comments[op.target].append(op)
        elif op.kind == "batch":
            for fid in op.resolves:
                resolvers[fid].append(op)
        elif op.kind == "comment":
            new_comments[op.target].append(op)

    def expect_present(fid: str, what: str) -> bool:
        """A fault known to be committed is there, unless this cycle deleted it."""
        delete = deletes.get(fid)
        if fid in seen:
            if delete is not None and delete.acked:
                fail("acked-delete-undone", f"{fid} ({what}), deleted by acknowledged {delete.marker}, is back")
            return True
        if delete is None:
            fail("acked-fault-missing", f"{fid} ({what}) is gone")
        return False

    # Faults from before this cycle stay, unless this cycle deleted them.
    for fid, fault in model.items():
        if expect_present(fid, fault.resource_id):
            accounted[fid] = fault
    for op in deletes.values():
        if not op.acked:
            op.applied = op.target not in seen

    # New faults: acknowledged ones are there, unacknowledged ones wholly or not at all.
    for op in ops:
        if op.kind == "create":
            ids = by_resource.get(op.resource_id, [])
            if len(ids) > 1:
                fail("duplicate-fault", f"{op.marker}: {len(ids)} faults for one POST /fault")
            if op.acked:
                expect_present(op.response["id"], f"POST /fault {op.marker}")
            else:
                op.applied = bool(ids)
            for fid in ids[:1]:
                f = seen[fid]
                if f["type"] != SINGLE_TYPE or f["message"] != f"crash loop {op.marker}":
                    fail("fault-content", f"{fid} is not what {op.marker} sent: {f}")
                accounted[fid] = Fault(fid, op.resource_id, SINGLE_TYPE, op.thread)
        elif op.kind == "batch":
            present = [rid for rid in op.triggers if by_resource.get(rid)]
            for rid in present:
                if len(by_resource[rid]) > 1:
                    fail("duplicate-fault", f"{rid}: {len(by_resource[rid])} faults")
            if op.acked:
                for result in op.response["results"][:len(op.triggers)]:
                    expect_present(result["fault_id"], f"batch {op.marker}")
            elif present and len(present) != len(op.triggers):
                fail("batch-not-atomic", f"unacknowledged batch {op.marker}: {len(present)} of "
                     f"{len(op.triggers)} faults present")
            applied = op.acked or len(present) == len(op.triggers)
            if not op.acked:
                op.applied = applied
            for fid in op.resolves:
                if fid in seen and (seen[fid]["status"] == "resolved") != applied:
                    fail("batch-not-atomic", f"batch {op.marker} ({'applied' if applied else 'not applied'}) "
                         f"but {fid} is {seen[fid]['status']}")
            for rid in present:
                fid = by_resource[rid][0]
                accounted[fid] = Fault(fid, rid, BATCH_TYPE, op.thread)

    # Status and comments of every fault that is there.
    for fid, fault in accounted.items():
        f = seen[fid]
        if f["resource_id"] != fault.resource_id or f["type"] != fault.type:
            fail("fault-content", f"{fid} changed: {f['resource_id']} {f['type']}")
        texts = [c["comment"] for c in f["comments"]]
        if texts[:len(fault.comments)] != fault.comments:
            fail("comment-lost", f"{fid}: comments seen before a restart are gone: {fault.comments} -> {texts}")
        extra = collections.Counter(texts[len(fault.comments):])
        for text, n in extra.items():
            if n > 1:
                fail("duplicate-comment", f"{fid}: {text!r} {n} times")
        sent = {op.text: op for op in new_comments.get(fid, [])}
        for text in extra:
            if text not in sent:
                fail("unexpected-comment", f"{fid}: {text!r} was never sent")
        for text, op in sent.items():
            if op.kind == "comment":
                if op.acked and text not in extra:
                    fail("acked-comment-missing", f"{fid}: acknowledged comment {op.marker} is gone")
                if not op.acked:
                    op.applied = text in extra
        resolved = f["status"] == "resolved"
        acked_resolve = any(op.acked for op in resolvers.get(fid, []))
        if fault.status == "resolved" or acked_resolve:
            if not resolved:
                fail("acked-resolve-missing", f"{fid} is unresolved again")
        elif resolved and not resolvers.get(fid):
            fail("unexpected-resolve", f"{fid} was resolved by nobody")
        for op in resolvers.get(fid, []):
            if op.kind != "resolve":
                continue
            if op.acked and op.text not in extra:
                fail("acked-comment-missing", f"{fid}: the comment of acknowledged resolve {op.marker} is gone")
            if not op.acked:
                if resolved != (op.text in extra):
                    fail("resolve-not-atomic", f"{fid}: resolve {op.marker} left status {f['status']} "
                         f"with its comment {'present' if op.text in extra else 'absent'}")
                op.applied = resolved
        fault.status = f["status"]
        fault.comments = texts

    for fid in seen:
        if fid not in accounted:
            fail("unexpected-fault", f"{fid} ({seen[fid]['resource_id']}) was never sent")
    return problems, accounted


def verify_tokens(model: dict[str, Token], ops: list[Op], listed: list[dict]) -> tuple[list[str], dict[str, Token]]:
    """The same for access tokens: minted ones are there, revoked ones stay revoked."""
    problems: list[str] = []
    seen = {t["id"]: t for t in listed}
    by_label: dict[str, list[str]] = collections.defaultdict(list)
    for t in listed:
        by_label[t["label"]].append(t["id"])
    revokes = {op.target: op for op in ops if op.kind == "revoke"}
    accounted: dict[str, Token] = {}
    for tid, token in model.items():
        if tid not in seen:
            problems.append(f"acked-token-missing: {tid} ({token.label}) is gone")
        else:
            accounted[tid] = token
    for op in ops:
        if op.kind != "mint":
            continue
        ids = by_label.get(op.text, [])
        if len(ids) > 1:
            problems.append(f"duplicate-token: {len(ids)} tokens for mint {op.marker}")
        if op.acked and op.response["id"] not in seen:
            problems.append(f"acked-token-missing: {op.response['id']} (mint {op.marker}) is gone")
        if not op.acked:
            op.applied = bool(ids)
        for tid in ids[:1]:
            accounted[tid] = Token(tid, op.text, op.thread, jwt=op.response["token"] if op.acked else None)
    for tid, token in accounted.items():
        revoked = seen[tid]["revoked_at"] is not None
        revoke = revokes.get(tid)
        if token.revoked or (revoke is not None and revoke.acked):
            if not revoked:
                problems.append(f"acked-revoke-missing: token {tid} ({token.label}) is active again")
        elif revoked and revoke is None:
            problems.append(f"unexpected-revoke: token {tid} was revoked by nobody")
        if revoke is not None and not revoke.acked:
            revoke.applied = revoked
        token.revoked = revoked
    for tid in seen:
        if tid not in accounted:
            problems.append(f"unexpected-token: {tid} ({seen[tid]['label']}) was never minted")
    return problems, accounted


def check_token_access(port: int, tokens: dict[str, Token]) -> list[str]:
    """Each token whose JWT is known reads while active and is refused once revoked."""
    problems = []
    for token in tokens.values():
        if token.jwt is None:
            continue
        api = Api(port, token.jwt)
        try:
            status, _, body = api.request("GET", "/fault?limit=1")
        finally:
            api.close()
        if (status == 401) != token.revoked or status not in (200, 401):
            problems.append(f"token-access: {'revoked' if token.revoked else 'active'} token {token.id} "
                            f"({token.label}) answered {status} {body}")
    return problems


def read_all_tokens(api: Api) -> list[dict]:
    status, _, body = api.request("GET", "/fault/token?limit=100")
    if status != 200:
        raise Violation(f"GET /fault/token: {status} {body}")
    if len(body["data"]) >= 100:
        raise Violation("GET /fault/token lists 100 tokens: some may be missing from the list")
    return body["data"]


def retry_idempotent(api: Api, ops: list[Op], model: Model) -> list[str]:
    """Send every idempotent write of the cycle again, and fold what it did into the model."""
    problems = []
    for op in ops:
        if op.idem_key is None or (op.target is not None and op.target not in model.faults):
            continue
        status, headers, body = api.request(op.method, op.path, op.body, op.idem_key)
        replayed = headers.get("idempotent-replayed") == "true"
        if op.acked:
            if not replayed or status != op.status or body != op.response:
                problems.append(f"idempotent-replay: acknowledged {op.kind} {op.marker} sent again answered "
                                f"{status} (replayed: {replayed}), not its first answer")
            continue
        if status >= 300:
            problems.append(f"idempotent-retry: unacknowledged {op.kind} {op.marker} sent again: {status} {body}")
            continue
        if replayed != bool(op.applied):
            problems.append(f"idempotent-replay: unacknowledged {op.kind} {op.marker} was "
                            f"{'found' if op.applied else 'not found'} after the restart, but sent again it "
                            f"{'replayed' if replayed else 'ran again'}")
            continue
        if replayed:
            if op.kind == "mint":
                model.tokens[body["id"]].jwt = body["token"]
            continue
        if op.kind == "batch" and [r["outcome"] for r in body["results"]] != \
                ["created"] * len(op.triggers) + ["resolved"] * len(op.resolves):
            problems.append(f"idempotent-retry: batch {op.marker} sent again: {body['results']}")
            continue
        faults = model.faults
        if op.kind == "create":
            faults[body["id"]] = Fault(body["id"], op.resource_id, SINGLE_TYPE, op.thread)
        elif op.kind == "batch":
            results = body["results"]
            for result, rid in zip(results, op.triggers):
                faults[result["fault_id"]] = Fault(result["fault_id"], rid, BATCH_TYPE, op.thread)
            for fid in op.resolves:
                faults[fid].status = "resolved"
        elif op.kind == "mint":
            model.tokens[body["id"]] = Token(body["id"], op.text, op.thread, jwt=body["token"])
        else:  # comment, resolve: the answer is the whole fault
            faults[op.target].status = body["status"]
            faults[op.target].comments = [c["comment"] for c in body["comments"]]
    return problems


# ---------------------------------------------------------------------------------------------
# Sabotage (--self-test): break the database between a kill and the restart


def sabotage(kind: str, db: Database, ops: list[Op]) -> str | None:
    """Apply `kind`; returns what was done, or None if this cycle offered nothing to break."""
    def remove_fault(fid: str, clean: bool = True) -> None:
        sql = f"DELETE FROM faults WHERE id = '{fid}';"
        if clean:
            sql = (f"DELETE FROM comments WHERE fault_id = '{fid}'; DELETE FROM fault_ancestors WHERE fault_id = '{fid}';"
                   f"DELETE FROM fault_events WHERE fault_id = '{fid}';" + sql)
        db.execute(sql)

    acked = [op for op in ops if op.acked]
    if kind == "lose-acked-fault":
        creates = [op for op in acked if op.kind == "create"
                   and not any(o.target == op.response["id"] for o in ops if o.kind == "delete")]
        if creates:
            remove_fault(creates[0].response["id"])
            return creates[0].response["id"]
    elif kind == "half-batch":
        batches = [op for op in acked if op.kind == "batch" and len(op.triggers) >= 2]
        if batches:
            op = batches[0]
            op.acked, op.status, op.response = False, None, None
            fid = db.query(f"SELECT id FROM faults WHERE resource_id = '{op.triggers[-1]}'")[0][0]
            remove_fault(fid)
            return f"{op.marker} less {fid}"
    elif kind == "lose-comment":
        comments = [op for op in acked if op.kind == "comment"
                    and not any(o.target == op.target for o in ops if o.kind == "delete")]
        if comments:
            op = comments[0]
            cid = db.query(f"SELECT id FROM comments WHERE comment = '{op.text}'")[0][0]
            db.execute(f"DELETE FROM comments WHERE id = '{cid}'; UPDATE faults SET comment_count = comment_count - 1 "
                       f"WHERE id = '{op.target}'; DELETE FROM fault_events WHERE seq = (SELECT MAX(seq) FROM "
                       f"fault_events WHERE fault_id = '{op.target}' AND kind = 'commented');")
            return op.marker
    elif kind == "half-resolve":
        resolves = [op for op in acked if op.kind == "resolve"
                    and not any(o.target == op.target for o in ops if o.kind == "delete")]
        if resolves:
            op = resolves[0]
            op.acked, op.status, op.response, op.idem_key = False, None, None, None
            db.execute(f"DELETE FROM comments WHERE comment = '{op.text}'; UPDATE faults SET comment_count = "
                       f"comment_count - 1 WHERE id = '{op.target}'; DELETE FROM fault_events WHERE seq = (SELECT "
                       f"MAX(seq) FROM fault_events WHERE fault_id = '{op.target}' AND kind = 'commented');")
            return op.marker
    elif kind == "orphan-ancestor":
        rows = db.query(f"SELECT id FROM faults WHERE type = '{BATCH_TYPE}' LIMIT 1")
        if rows:
            remove_fault(rows[0][0], clean=False)
            return rows[0][0]
    elif kind == "count-drift":
        rows = db.query("SELECT id FROM faults LIMIT 1")
        if rows:
            db.execute(f"UPDATE faults SET comment_count = comment_count + 1 WHERE id = '{rows[0][0]}'")
            return rows[0][0]
    elif kind == "forget-idempotency":
        if any(op.idem_key for op in acked):
            db.execute("DELETE FROM idempotency_keys")
            return "idempotency_keys"
    elif kind == "phantom-fault":
        # A copy of an open fault without comments, with its 'created' entry: consistent in
        # every way the database checks look at, so only the check against what was sent sees it.
        rows = db.query(f"SELECT id FROM faults WHERE type = '{SINGLE_TYPE}' AND status = 'unresolved' "
                        "AND comment_count = 0 LIMIT 1")
        if rows:
            fid, phantom = rows[0][0], "flt_" + "0" * 23 + "PHNT"
            columns = ("customer_id, resource_id, microservice_id, type, status, severity, message, cause, "
                       "created_at, resolved_at, resource_ancestry_path, site_id, ttl")
            db.execute(f"INSERT INTO faults (id, {columns}) SELECT '{phantom}', {columns} FROM faults WHERE id = '{fid}';"
                       f"INSERT INTO fault_events (customer_id, fault_id, kind, actor, at, detail) SELECT customer_id, "
                       f"'{phantom}', kind, actor, at, detail FROM fault_events WHERE fault_id = '{fid}' AND kind = 'created';"
                       f"INSERT INTO fault_ancestors SELECT customer_id, element, created_at, '{phantom}', severity"
                       f"{', (SELECT seq FROM faults WHERE id = ' + repr(phantom) + ')' if db.backend == 'sqlite' else ''} "
                       f"FROM fault_ancestors WHERE fault_id = '{fid}';")
            return phantom
    elif kind == "lose-token":
        mints = [op for op in acked if op.kind == "mint"]
        if mints:
            tid = mints[0].response["id"]
            db.execute(f"DELETE FROM short_links WHERE token_id = '{tid}'; DELETE FROM fault_events WHERE fault_id = "
                       f"'{tid}'; DELETE FROM access_tokens WHERE id = '{tid}';")
            return tid
    elif kind == "drop-created-event":
        rows = db.query("SELECT id FROM faults LIMIT 1")
        if rows:
            db.execute(f"DELETE FROM fault_events WHERE fault_id = '{rows[0][0]}' AND kind = 'created'")
            return rows[0][0]
    elif kind == "unrevoke":
        revokes = [op for op in acked if op.kind == "revoke"]
        if revokes:
            db.execute(f"UPDATE access_tokens SET revoked_at = NULL WHERE id = '{revokes[0].target}'")
            return revokes[0].target
    elif kind == "corrupt-index" and isinstance(db, SqliteDb):
        db.execute("PRAGMA wal_checkpoint(TRUNCATE);")
        page_size = db.query("PRAGMA page_size")[0][0]
        # One character of a fault id in an entry of an index: the entry no longer matches its
        # row, which only an integrity check notices.
        root = db.query("SELECT rootpage FROM sqlite_schema WHERE name = 'faults_by_customer'")[0][0]
        with open(db.path, "r+b") as f:
            f.seek((root - 1) * page_size)
            page = bytearray(f.read(page_size))
            at = page.rfind(b"flt_")
            if at < 0:
                return None
            page[at + 30] = ord("A") if page[at + 30] != ord("A") else ord("B")
            f.seek((root - 1) * page_size)
            f.write(page)
        return f"page {root} offset {at}"
    return None


# ---------------------------------------------------------------------------------------------
# A run


@dataclass
class RunResult:
    ok: bool
    line: str
    acked: int = 0
    unacked: int = 0
    problems: list[str] = field(default_factory=list)


def one_run(args, index: int, backend: str, seed: int, workroot: str, sabotage_kind: str | None = None) -> RunResult:
    rng = random.Random(seed)
    started = time.monotonic()
    run_deadline = started + args.run_seconds
    workdir = tempfile.mkdtemp(prefix=f"run{index}-", dir=workroot)
    if backend == "sqlite":
        db: Database = SqliteDb(workdir)
    else:
        db = PostgresDb(args.postgres_url, f"crash_loop_{os.getpid()}_{index}_{seed}")
    server = Server(args.binary, db, workdir)
    model = Model()
    totals = collections.Counter()
    notes: list[str] = []
    problems: list[str] = []
    try:
        if rng.random() < 0.2:
            if migrate_and_kill(args.binary, db, rng.uniform(0.0, 0.25)):
                notes.append("migrate killed")
            db.settle()
        server.start()
        for cycle in range(args.kills):
            stop = threading.Event()
            writers = [Writer(t, server.port, server.key, random.Random(rng.random()), stop,
                              f"r{index}c{cycle}", model, run_deadline, args.writers) for t in range(args.writers)]
            kill_after = rng.uniform(args.kill_min, args.kill_max)
            for w in writers:
                w.start()
            time.sleep(kill_after)
            server.kill()
            stop.set()
            settled = db.settle()
            totals["settle-ms"] = max(totals["settle-ms"], int(settled * 1000))
            for w in writers:
                w.join(timeout=HTTP_TIMEOUT + 5)
                if w.is_alive():
                    raise Violation(f"writer {w.tid} still running after the kill")
                problems += [f"writer: {u}" for u in w.unexpected]
            ops = [op for w in writers for op in w.ops]
            totals["acked"] += sum(op.acked for op in ops)
            totals["unacked"] += sum(not op.acked for op in ops)
            totals["events"] += sum(len(op.triggers) + len(op.resolves) for op in ops if op.acked)
            for op in ops:
                totals[f"{op.kind}:{'ack' if op.acked else 'unack'}"] += 1

            if sabotage_kind is not None and cycle == args.kills - 1:
                done = sabotage(sabotage_kind, db, ops)
                if done is None:
                    raise NothingToSabotage()
                notes.append(f"sabotage {sabotage_kind}: {done}")
            problems += [f"after kill {cycle + 1}: {p}" for p in db.crash_checks()]
            if problems:
                break
            server.spawn()
            if rng.random() < 0.3:
                time.sleep(rng.uniform(0.0, 0.2))
                server.kill()
                totals["restart-kills"] += 1
                db.settle()
                server.spawn()
            server.wait_ready()
            api = Api(server.port, server.key)
            try:
                seen = read_all_faults(api, run_deadline + 60)
                found, faults = verify_faults(model.faults, ops, seen)
                more, tokens = verify_tokens(model.tokens, ops, read_all_tokens(api))
                model = Model(faults, tokens)
                found += more + check_token_access(server.port, model.tokens)
                problems += [f"after restart {cycle + 1}: {p}" for p in found]
                if problems:
                    break
                totals["applied"] += sum(bool(op.applied) for op in ops if not op.acked)
                problems += [f"after restart {cycle + 1}: {p}" for p in retry_idempotent(api, ops, model)]
            finally:
                api.close()
            if problems:
                break
        if not problems:
            server.stop()
            problems += [f"after stop: {p}" for p in db.final_checks()]
    except Violation as e:
        problems.append(f"{e}")
    except NothingToSabotage:
        problems = ["no-target"]
    except (OSError, http.client.HTTPException, RuntimeError, subprocess.SubprocessError, sqlite3.Error) as e:
        problems.append(f"harness: {type(e).__name__}: {e}")
    finally:
        server.kill()
        if problems and args.keep_failed:
            problems.append(f"data kept: {workdir}" + (f", schema {db.schema}" if isinstance(db, PostgresDb) else ""))
        else:
            try:
                db.drop()
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.monotonic() - started
    detail = (f"acked {totals['acked']} (create {totals['create:ack']}, batch {totals['batch:ack']} = "
              f"{totals['events']} events, comment {totals['comment:ack']}, resolve {totals['resolve:ack']}, "
              f"delete {totals['delete:ack']}), unacked {totals['unacked']} (found applied {totals['applied']})"
              f", mint {totals['mint:ack']}, revoke {totals['revoke:ack']}"
              f"; faults {len(model.faults)}, tokens {len(model.tokens)}" + (f", restart kills {totals['restart-kills']}" if totals['restart-kills'] else "")
              + (f", settled in {totals['settle-ms']} ms" if backend == "postgres" else "")
              + (f", {'; '.join(notes)}" if notes else ""))
    line = f"run {index + 1} {backend:8} seed {seed}: {'ok' if not problems else 'FAIL'} {elapsed:5.1f}s  {detail}"
    return RunResult(not problems, line, totals["acked"], totals["unacked"], problems)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default="target/debug/faultline", help="the faultline binary")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--runs", type=int, default=50, help="runs in all, alternating between backends")
    parser.add_argument("--seed", type=int, default=None, help="run i uses seed + i (default: from the clock)")
    parser.add_argument("--kills", type=int, default=2, help="kill-restart-verify cycles per run")
    parser.add_argument("--writers", type=int, default=4, help="concurrent writer threads")
    parser.add_argument("--kill-min", type=float, default=0.2, help="earliest kill, seconds after writes start")
    parser.add_argument("--kill-max", type=float, default=1.5, help="latest kill")
    parser.add_argument("--run-seconds", type=float, default=60, help="bound on one run's writes")
    parser.add_argument("--max-seconds", type=float, default=600, help="bound on the whole loop; past it, fail")
    parser.add_argument("--postgres-url", default=os.environ.get("FAULTLINE_TEST_POSTGRES_URL", PG_BASE_DEFAULT))
    parser.add_argument("--keep-failed", action="store_true", help="keep a failed run's database")
    parser.add_argument("--self-test", action="store_true",
                        help="sabotage the database once per kind and require the checks to catch each")
    parser.add_argument("--sabotage", action="append", choices=sorted(SABOTAGES),
                        help="with --self-test: only this kind (repeatable)")
    args = parser.parse_args()
    # SIGTERM (a CI timeout, say) unwinds like Ctrl-C, so every server is killed and every
    # schema dropped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if not os.access(args.binary, os.X_OK):
        print(f"crash_loop: {args.binary} is not an executable faultline binary", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else int(time.time()) % 1_000_000
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    workroot = tempfile.mkdtemp(prefix="faultline-crash-loop-")
    started = time.monotonic()
    kept = False
    try:
        if args.self_test:
            return self_test(args, seed, backends, workroot)
        failures = []
        by_backend = collections.defaultdict(lambda: collections.Counter())
        print(f"crash loop: {args.runs} runs, {args.kills} kills each, {args.writers} writers, seed {seed}", flush=True)
        for i in range(args.runs):
            if time.monotonic() - started > args.max_seconds:
                print(f"crash loop: FAIL: only {i} of {args.runs} runs within --max-seconds {args.max_seconds:.0f}")
                return 1
            backend = backends[i % len(backends)]
            result = one_run(args, i, backend, seed + i, workroot)
            print(result.line, flush=True)
            stats = by_backend[backend]
            stats["runs"] += 1
            stats["acked"] += result.acked
            stats["unacked"] += result.unacked
            if not result.ok:
                failures.append(i)
                kept = kept or args.keep_failed
                for p in result.problems[:20]:
                    print(f"    {p}")
                print(f"    reproduce: {sys.argv[0]} --binary {args.binary} --backend {backend} --runs 1 "
                      f"--kills {args.kills} --writers {args.writers} --kill-min {args.kill_min} "
                      f"--kill-max {args.kill_max} --seed {seed + i}")
        elapsed = time.monotonic() - started
        for backend, s in by_backend.items():
            print(f"crash loop: {backend}: {s['runs']} runs, {s['acked']} acknowledged writes "
                  f"({s['acked'] / max(s['runs'], 1):.0f} a run), {s['unacked']} unacknowledged")
        print(f"crash loop: {'FAIL' if failures else 'ok'}: {args.runs - len(failures)} of {args.runs} runs "
              f"passed in {elapsed:.0f}s (seed {seed})")
        return 1 if failures else 0
    finally:
        if not kept:
            shutil.rmtree(workroot, ignore_errors=True)


def self_test(args, seed: int, backends: list[str], workroot: str) -> int:
    """Each sabotage must make its run fail through the check meant for it."""
    missed = []
    args.kills = 1
    started = time.monotonic()
    for n, (kind, (what, check)) in enumerate(SABOTAGES.items()):
        if args.sabotage and kind not in args.sabotage:
            continue
        if time.monotonic() - started > args.max_seconds:
            print(f"crash loop self-test: FAIL: not done within --max-seconds {args.max_seconds:.0f}")
            return 1
        for backend in backends:
            if kind == "corrupt-index" and backend != "sqlite":
                continue
            for attempt in range(5):  # a short cycle may offer nothing to break; try other seeds
                result = one_run(args, n, backend, seed + 100 * n + attempt, workroot, sabotage_kind=kind)
                if result.problems != ["no-target"]:
                    break
            catches = [p for p in result.problems if ": " in p and p.split(": ", 2)[1].startswith(check)]
            print(f"self-test {kind:20} {backend:8}: {'caught' if catches else 'MISSED'} by {check} ({what})",
                  flush=True)
            for p in catches[:1] or result.problems[:5]:
                print(f"    {p[:300]}")
            caught = bool(catches)
            if not caught:
                missed.append(f"{kind} on {backend}")
    print(f"crash loop self-test: {'FAIL: missed ' + ', '.join(missed) if missed else 'ok: every sabotage caught'}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
