"""Benchmark of the consent ledger in the evidence database (connector.evidence) with SQLite and
PostgreSQL: a person's history read, the DPO's query for one notice version, verification,
and appends, over a ledger of one million entries.

    .venv/bin/python bench/ledger_bench.py                        # 1,000,000 entries, both
    .venv/bin/python bench/ledger_bench.py --entries 100000 --backend sqlite

For each backend: a fresh database (a SQLite file in a temporary folder; a throwaway
PostgreSQL cluster from tests/postgres_server.py, with its durability settings switched back
on), its schema made by ``Database.upgrade()``, then N entries loaded in time order over
about N/10 persons (4 to 16 entries each: the onboarding entries, then consent changes with
their proof, subscription changes, mails and CRM users' changes). The rows are made by
``connector.evidence.entry.stored_form``, so every hash and chain is real (``verify_all``
checks them all), and inserted in big batches, one transaction per batch.

Then, timed through the project's code (``connector.evidence.ledger.Ledger``), each next to an
anchor in the same run, through the database driver directly (sqlite3, psycopg):

- ``Ledger.entries(person)`` and ``Ledger.verify(person)`` for random persons;
  anchor: ``SELECT * FROM ledger_entries WHERE person_id = ? ORDER BY seq``;
- ``Ledger.query("EMARKETING", notice_version="2026-01")``, and with ``since`` a recent date;
  anchors: ``SELECT count(*)``, and a fetch of the same rows, at once and through a cursor
  (server-side on PostgreSQL, so planned as the project's own ``yield_per`` read);
- ``Ledger.verify_all()`` once; anchor: reading every row in chain order;
- ``Ledger.record`` appends; anchor: one INSERT and COMMIT of a ready row.

It also prints each query's plan (SQLite's EXPLAIN QUERY PLAN; PostgreSQL's EXPLAIN ANALYZE
of the statement the project sent) and the database's size on disk.

Targets (figures, not asserts; see bench/README.md): at 1,000,000 entries, a person's history
read in at most 5 ms at the 95th percentile, and the notice-version query in at most 2 s.
"""

import argparse
import math
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg
from sqlalchemy import event, insert
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connector.evidence.database import Database  # noqa: E402
from connector.evidence.entry import GENESIS, Entry, stored_form  # noqa: E402
from connector.evidence.ledger import Ledger  # noqa: E402
from connector.evidence.schema import ledger_entries  # noqa: E402
from connector.times import iso  # noqa: E402
from tests.postgres_server import start_postgres, stop_postgres  # noqa: E402

TARGET_HISTORY_P95_MS = 5.0
TARGET_QUERY_S = 2.0

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
START = datetime(2024, 1, 1, tzinfo=timezone.utc)
END = datetime(2026, 11, 29, tzinfo=timezone.utc)
NOTICE_2026 = datetime(2026, 1, 15, tzinfo=timezone.utc)
"""Entries from this day on show the notice version "2026-01", earlier ones "2025-06"."""
SINCE = END - timedelta(days=30)
"""The "recent date" of the query with ``since``."""

RECORDED, ONBOARDED, CONFIRMATION, CHANGED, SUBSCRIPTION, LINK_MAIL, CRM_CHANGE = range(7)
ONBOARDING = (RECORDED, ONBOARDED, CONFIRMATION)
"""The first three entries of every person, seconds apart."""
LATER = (CHANGED, SUBSCRIPTION, LINK_MAIL, CRM_CHANGE)
LATER_WEIGHTS = (45, 20, 20, 15)
"""What follows, anywhere between onboarding and END: mostly the person's own consent changes
on their page (EMARKETING 61A / WITHDRAWN), then subscription changes, mails with a fresh
link, and CRM users changing the STORE consent."""

USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.0 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
)

HISTORY_SQL = "SELECT * FROM ledger_entries WHERE person_id = ? ORDER BY seq"
QUERY_WHERE = "FROM ledger_entries WHERE purpose = ? AND notice_version = ?"
SINCE_WHERE = QUERY_WHERE + " AND at >= ?"
ALL_SQL = "SELECT * FROM ledger_entries ORDER BY person_id, seq"


# -- the synthetic ledger ----------------------------------------------------------------------

def milliseconds(moment: datetime) -> int:
    """Milliseconds since 1970 (exact: the entries' times are whole milliseconds)."""
    return (moment - EPOCH) // timedelta(milliseconds=1)


def timeline(entries: int, seed: int) -> tuple[list[tuple[int, int, int]], int]:
    """``entries`` events (milliseconds, person id, kind) in time order, and the number of
    persons they are about (persons 1, 2, 3 … with 4 to 16 entries each, 10 on average)."""
    rng = random.Random(seed)
    start, end = milliseconds(START), milliseconds(END)
    events, person_id = [], 0
    while len(events) < entries:
        person_id += 1
        count = min(rng.randint(4, 16), entries - len(events))
        onboarded = rng.randrange(start, end - 86_400_000)
        for position in range(count):
            if position < len(ONBOARDING):
                events.append((onboarded + 1500 * position, person_id, ONBOARDING[position]))
            else:
                events.append((rng.randrange(onboarded + 3_600_000, end), person_id,
                               rng.choices(LATER, LATER_WEIGHTS)[0]))
    events.sort()
    return events, person_id


def text_time(moment_ms: int) -> str:
    """The stored form of a time: ISO UTC with milliseconds, as the ledger writes it."""
    return iso(EPOCH + timedelta(milliseconds=moment_ms), "milliseconds")


def planned_entry(kind: int, at: str, person: dict, rng: random.Random) -> Entry:
    """The entry of one event, as the connector's planners (connector.plans) would make it;
    ``person`` holds what the person's earlier entries left (their consents now)."""
    job_id = f"{rng.getrandbits(128):032x}"
    event_id = f"{rng.getrandbits(64):016x}"
    token_id = f"{rng.getrandbits(72):018x}"
    if kind == RECORDED:
        source = "WEBFORM" if rng.random() < 0.2 else "USER"
        return Entry("consent.recorded", {
            "purpose": "STORE", "legal_basis": "61F", "source": source,
            "comment": "Recorded by consent-connector for a new person: Sales and service on "
                       "Legitimate interest, data source Registered by our staff.",
            "actor": "connector", "job_id": job_id, "event_id": event_id})
    if kind == ONBOARDED:
        return Entry("person.onboarded", {"actor": "connector", "job_id": job_id,
                                          "event_id": event_id})
    if kind in (CONFIRMATION, LINK_MAIL):
        return Entry("mail.sent", {
            "mail": "confirmation" if kind == CONFIRMATION else "link", "token_id": token_id,
            "message_id": f"<{rng.getrandbits(96):024x}@consent.example.org>",
            "actor": "connector", "job_id": job_id})
    if kind == CRM_CHANGE:
        basis = "WITHDRAWN" if person["store"] == "61F" else "61F"
        entry = Entry("crm.consent_changed", {
            "purpose": "STORE", "previous_legal_basis": person["store"], "legal_basis": basis,
            "source": "USER", "comment": "Changed in SuperOffice", "actor": "crm user",
            "associate_id": rng.randint(2, 60), "event_id": event_id, "crm_updated": at})
        person["store"] = basis
        return entry
    notice = "2026-01" if at >= person["notice_from"] else "2025-06"
    proof = {"submitted_at": at[:19] + "+00:00", "token_id": token_id,
             "user_agent": rng.choice(USER_AGENTS),
             "ip": f"203.0.{rng.randint(0, 255)}.0/24 #{rng.getrandbits(64):016x}",
             "notice_version": notice, "actor": "person", "job_id": job_id}
    if kind == SUBSCRIPTION:
        return Entry("subscription.changed", {
            "subscription": "newsletter", "shipment_type": "3 Newsletter",
            "change": rng.choice(("False → True", "True → False")), **proof})
    basis = "WITHDRAWN" if person["marketing"] == "61A" else "61A"
    comment = (f"Consent given by the person on their personal page (notice {notice}); "
               if basis == "61A" else "Consent withdrawn by the person on their personal page; ")
    entry = Entry("consent.changed", {
        "purpose": "EMARKETING", "previous_legal_basis": person["marketing"],
        "legal_basis": basis, "source": "WEBFORM", "comment": comment + f"link {token_id}",
        **proof})
    person["marketing"] = basis
    return entry


def load(database: Database, events: list[tuple[int, int, int]], batch: int,
         seed: int) -> tuple[float, float]:
    """Insert the events as chained rows, ``batch`` rows per transaction (executemany);
    return (seconds making rows, seconds inserting them)."""
    rng = random.Random(seed + 1)
    notice_from = text_time(milliseconds(NOTICE_2026))
    persons: dict[int, dict] = {}
    making = inserting = 0.0
    for first in range(0, len(events), batch):
        started = time.perf_counter()
        rows = []
        for moment, person_id, kind in events[first:first + batch]:
            person = persons.setdefault(person_id, {"seq": 0, "hash": GENESIS, "store": "61F",
                                                    "marketing": "",
                                                    "notice_from": notice_from})
            at = text_time(moment)
            row = stored_form(person_id, person["seq"] + 1, at,
                              planned_entry(kind, at, person, rng), person["hash"])
            person["seq"], person["hash"] = row["seq"], row["hash"]
            rows.append(row)
        made = time.perf_counter()
        with database.writing() as connection:
            connection.execute(insert(ledger_entries), rows)
        making += made - started
        inserting += time.perf_counter() - made
    return making, inserting


# -- the anchors: the database driver, without the project's code -----------------------------

class Driver:
    """A connection of the database driver itself (sqlite3 or psycopg), in autocommit mode,
    with the same settings the project's connections get; SQL is written with ``?``."""

    def __init__(self, database: Database):
        self.is_sqlite = database.is_sqlite
        if self.is_sqlite:
            self.connection = sqlite3.connect(database.url.database, isolation_level=None)
            self.connection.execute("PRAGMA journal_mode=WAL")
            self.connection.execute("PRAGMA synchronous=FULL")
        else:
            url = database.url.set(drivername="postgresql")
            self.connection = psycopg.connect(url.render_as_string(hide_password=False),
                                              autocommit=True)

    def sql(self, text: str) -> str:
        """``text`` with the driver's placeholders."""
        return text if self.is_sqlite else text.replace("?", "%s")

    def fetch(self, text: str, *parameters) -> list[tuple]:
        """Every row the statement returns."""
        return self.connection.execute(self.sql(text), parameters).fetchall()

    def run(self, text: str) -> None:
        """Execute a statement that returns no rows."""
        self.connection.execute(text)

    def scan(self, text: str, *parameters) -> int:
        """Read every row of the statement, 5,000 at a time (a server-side cursor on
        PostgreSQL, as the project's ``yield_per`` does); return how many."""
        count = 0
        if self.is_sqlite:
            cursor = self.connection.execute(text, parameters)
        else:
            self.connection.autocommit = False
            cursor = self.connection.cursor(name="anchor_scan")
            cursor.execute(self.sql(text), parameters)
        while rows := cursor.fetchmany(5000):
            count += len(rows)
        cursor.close()
        if not self.is_sqlite:
            self.connection.commit()
            self.connection.autocommit = True
        return count

    def insert(self, row: dict) -> None:
        """INSERT one ready row in a transaction of its own (committed, durably)."""
        names = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        self.connection.execute(self.sql(f"INSERT INTO ledger_entries ({names}) VALUES "
                                         f"({marks})"), tuple(row.values()))

    def explain(self, statement: str, parameters, cursor: bool = False) -> list[str]:
        """The plan of a statement the project sent (its SQL and parameters as sent):
        EXPLAIN QUERY PLAN on SQLite; EXPLAIN (ANALYZE, BUFFERS) on PostgreSQL, of the
        server-side cursor (DECLARE … CURSOR) the project opens when it reads with
        ``yield_per`` (``cursor``): PostgreSQL plans a cursor for its first rows."""
        if self.is_sqlite:
            rows = self.connection.execute("EXPLAIN QUERY PLAN " + statement, parameters)
            return [row[3] for row in rows]
        declare = "DECLARE plan_cursor CURSOR FOR " if cursor else ""
        with self.connection.transaction():
            rows = self.connection.execute("EXPLAIN (ANALYZE, BUFFERS) " + declare + statement,
                                           parameters).fetchall()
        return [row[0] for row in rows]

    def close(self) -> None:
        self.connection.close()


class SentStatements:
    """Remembers the last SELECT on ledger_entries the project's engine sent, to EXPLAIN it."""

    def __init__(self, database: Database):
        self.last: tuple[str, object] | None = None
        event.listen(database.engine, "before_cursor_execute", self.remember)

    def remember(self, _connection, _cursor, statement, parameters, _context, executemany):
        """SQLAlchemy's before_cursor_execute hook."""
        if not executemany and statement.lstrip().upper().startswith("SELECT") \
                and "ledger_entries" in statement:
            self.last = (statement, parameters)


# -- timing ------------------------------------------------------------------------------------

def timed(function, *args) -> tuple[float, object]:
    """(milliseconds, result) of one call."""
    started = time.perf_counter()
    result = function(*args)
    return (time.perf_counter() - started) * 1000, result


def summary(label: str, times: list[float], rows: int | str = "", anchor_of: str = "") -> dict:
    """One line of the table: median and 95th percentile of ``times`` (ms)."""
    ordered = sorted(times)
    return {"label": label, "runs": len(times), "rows": rows,
            "median": statistics.median(ordered),
            "p95": ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)],
            "anchor_of": anchor_of}


def measure_pairs(label: str, anchor_label: str, project, anchor, arguments) -> list[dict]:
    """Time ``project`` and ``anchor`` alternately for each of ``arguments`` (one warm-up
    call each first); return their two summaries."""
    project(arguments[0]), anchor(arguments[0])
    project_times, anchor_times, rows = [], [], []
    for argument in arguments:
        elapsed, result = timed(project, argument)
        project_times.append(elapsed)
        rows.append(len(result) if isinstance(result, list) else 0)
        anchor_times.append(timed(anchor, argument)[0])
    mean_rows = f"{statistics.mean(rows):.1f}" if any(rows) else ""
    return [summary(label, project_times, mean_rows),
            summary(anchor_label, anchor_times, mean_rows, anchor_of=label)]


def database_size(database: Database, driver: Driver) -> str:
    """The ledger's size on disk: the SQLite file (after a WAL checkpoint), or PostgreSQL's
    pg_total_relation_size('ledger_entries') with its table and index parts."""
    if database.is_sqlite:
        driver.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        path = Path(database.url.database)
        wal = path.with_name(path.name + "-wal")
        size = path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
        return f"{size / 2**20:,.0f} MB (SQLite file, whole database)"
    total, table, indexes = driver.fetch(
        "SELECT pg_total_relation_size('ledger_entries'), pg_table_size('ledger_entries'), "
        "pg_indexes_size('ledger_entries')")[0]
    return (f"{total / 2**20:,.0f} MB (pg_total_relation_size: table {table / 2**20:,.0f} MB "
            f"+ indexes {indexes / 2**20:,.0f} MB)")


# -- one backend -------------------------------------------------------------------------------

def bench_backend(name: str, url: str, args) -> dict:
    """Load the ledger into the database at ``url`` and time the project against its anchors;
    print the plans and the table as it goes; return the figures."""
    database = Database(url)
    database.upgrade()
    ledger = Ledger(database)
    sent = SentStatements(database)
    driver = Driver(database)
    figures = {"backend": name, "lines": []}
    lines = figures["lines"]
    try:
        started = time.perf_counter()
        events, persons = timeline(args.entries, args.seed)
        planning = time.perf_counter() - started
        making, inserting = load(database, events, args.batch, args.seed)
        del events
        if not database.is_sqlite:
            driver.run("VACUUM ANALYZE ledger_entries")  # what autovacuum does after a load
        figures["load"] = {"entries": args.entries, "persons": persons,
                           "seconds": time.perf_counter() - started, "planning": planning,
                           "making": making, "inserting": inserting}
        print(f"[{name}] loaded {args.entries:,} entries about {persons:,} persons in "
              f"{figures['load']['seconds']:.1f} s (timeline {planning:.1f} s, rows made by "
              f"stored_form {making:.1f} s, inserted {inserting:.1f} s: "
              f"{args.entries / inserting:,.0f} rows/s)", flush=True)
        figures["size"] = database_size(database, driver)
        print(f"[{name}] size on disk: {figures['size']}", flush=True)

        rng = random.Random(args.seed + 2)
        sample = rng.sample(range(1, persons + 1), min(args.repetitions, persons))
        plans = {}

        lines += measure_pairs("history read Ledger.entries", "anchor: raw SELECT * person",
                               ledger.entries, lambda person: driver.fetch(HISTORY_SQL, person),
                               sample)
        plans["history read (Ledger.entries)"] = driver.explain(*sent.last)
        lines += measure_pairs("Ledger.verify(person)", "anchor: raw SELECT * person",
                               ledger.verify, lambda person: driver.fetch(HISTORY_SQL, person),
                               sample)

        for label, since, where, parameters in (
                ("query EMARKETING 2026-01", None, QUERY_WHERE, ("EMARKETING", "2026-01")),
                (f"query ... since {SINCE:%Y-%m-%d}", text_time(milliseconds(SINCE)),
                 SINCE_WHERE, ("EMARKETING", "2026-01", text_time(milliseconds(SINCE))))):
            project, counts, fetches, scans, rows = [], [], [], [], 0
            runs = args.query_repetitions if since is None else args.query_repetitions * 4
            for _ in range(runs):
                elapsed, result = timed(lambda: list(ledger.query(
                    "EMARKETING", notice_version="2026-01", since=since)))
                project.append(elapsed)
                rows = len(result)
                del result
                counts.append(timed(driver.fetch, f"SELECT count(*) {where}", *parameters)[0])
                fetches.append(timed(driver.fetch, f"SELECT * {where} ORDER BY at, id",
                                     *parameters)[0])
                scans.append(timed(driver.scan, f"SELECT * {where} ORDER BY at, id",
                                   *parameters)[0])
            plans[label + " (server-side cursor on PostgreSQL)"] = driver.explain(
                *sent.last, cursor=True)
            lines += [summary(label, project, rows),
                      summary("anchor: raw SELECT count(*)", counts, 1, anchor_of=label),
                      summary("anchor: raw SELECT * same rows", fetches, rows, anchor_of=label),
                      summary("anchor: same, through a cursor", scans, rows, anchor_of=label)]

        elapsed, report = timed(ledger.verify_all)
        plans["Ledger.verify_all (server-side cursor on PostgreSQL)"] = driver.explain(
            *sent.last, cursor=True)
        anchor_elapsed, scanned = timed(driver.scan, ALL_SQL)
        figures["verify_all"] = {"persons": report.persons, "entries": report.entries,
                                 "breaks": len(report.breaks)}
        lines += [summary("Ledger.verify_all", [elapsed], report.entries),
                  summary("anchor: raw scan in chain order", [anchor_elapsed], scanned,
                          anchor_of="Ledger.verify_all")]
        print(f"[{name}] verify_all: {report.persons:,} persons, {report.entries:,} entries, "
              f"{len(report.breaks)} broken, {report.entries / elapsed * 1000:,.0f} entries/s",
              flush=True)

        appended, anchored = [], []
        targets = [rng.randint(1, persons) for _ in range(args.appends)]
        for number, person_id in enumerate(targets):
            appended.append(timed(ledger.record, person_id, Entry("consent.changed", {
                "purpose": "EMARKETING", "legal_basis": "61A", "source": "WEBFORM",
                "actor": "person", "notice_version": "2026-01", "token_id": f"bench{number}",
                "user_agent": USER_AGENTS[0], "ip": "203.0.113.0/24 #0123456789abcdef"}))[0])
            row = stored_form(persons + 1 + number, 1, text_time(milliseconds(END)),
                              Entry("mail.sent", {"mail": "link", "token_id": f"anchor{number}"}),
                              GENESIS)
            anchored.append(timed(driver.insert, row)[0])
        lines += [summary("append Ledger.record", appended, 1),
                  summary("anchor: raw INSERT + COMMIT", anchored, 1,
                          anchor_of="append Ledger.record")]
        figures["plans"] = plans
        return figures
    finally:
        driver.close()
        database.dispose()


def print_table(figures: dict) -> None:
    """The figures of one backend: project lines, each followed by its anchors with the
    ratio project/anchor (of the medians)."""
    print(f"\n{figures['backend']}: {figures['load']['entries']:,} entries, "
          f"{figures['load']['persons']:,} persons, {figures['size']}")
    if "server" in figures:
        print(f"PostgreSQL: {figures['server']}")
    print(f"{'':<34} {'runs':>5} {'rows':>8} {'median ms':>10} {'p95 ms':>10} "
          f"{'project/anchor':>15}")
    medians = {line["label"]: line["median"] for line in figures["lines"]
               if not line["anchor_of"]}
    for line in figures["lines"]:
        ratio = (f"{medians[line['anchor_of']] / line['median']:>14.1f}x"
                 if line["anchor_of"] else "")
        label = ("  " if line["anchor_of"] else "") + line["label"]
        print(f"{label:<34} {line['runs']:>5} {line['rows']!s:>8} {line['median']:>10.2f} "
              f"{line['p95']:>10.2f} {ratio:>15}")


def verdicts(figures: dict) -> list[str]:
    """The figures against the targets."""
    lines = {line["label"]: line for line in figures["lines"]}
    history = lines["history read Ledger.entries"]["p95"]
    query = lines["query EMARKETING 2026-01"]["median"] / 1000
    appends = lines["append Ledger.record"]["median"]
    name = figures["backend"]
    return [
        f"{name}: history read p95 {history:.2f} ms: "
        f"{'meets' if history <= TARGET_HISTORY_P95_MS else 'MISSES'} the target of "
        f"{TARGET_HISTORY_P95_MS:.0f} ms",
        f"{name}: notice-version query {query:.2f} s "
        f"({lines['query EMARKETING 2026-01']['rows']:,} rows): "
        f"{'meets' if query <= TARGET_QUERY_S else 'MISSES'} the target of "
        f"{TARGET_QUERY_S:.0f} s",
        f"{name}: appends through Ledger.record: {1000 / appends:,.0f}/s (median "
        f"{appends:.2f} ms)",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000,
                        help="ledger entries to load (default 1,000,000; ~10 per person)")
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), action="append",
                        help="backend to run (repeatable); default both")
    parser.add_argument("--repetitions", type=int, default=200,
                        help="random persons for the history read and verify (default 200)")
    parser.add_argument("--query-repetitions", type=int, default=5,
                        help="runs of the notice-version query (default 5; 4x that with since)")
    parser.add_argument("--appends", type=int, default=2000,
                        help="appends through Ledger.record (default 2,000)")
    parser.add_argument("--batch", type=int, default=20_000,
                        help="rows per transaction while loading (default 20,000)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    args = parser.parse_args()

    print(f"ledger benchmark — Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"sqlite {sqlite3.sqlite_version}, psycopg {psycopg.__version__}", flush=True)
    results = []
    for backend in args.backend or ["sqlite", "postgresql"]:
        folder = Path(tempfile.mkdtemp(prefix="ledger-bench-"))
        try:
            if backend == "sqlite":
                url = f"sqlite:///{folder / 'consent.db'}"
            else:
                url = start_postgres(folder)
                durable(url)
            figures = bench_backend(backend, url, args)
            if backend == "postgresql":
                figures["server"] = server_version(url)
            results.append(figures)
        finally:
            if backend == "postgresql":
                stop_postgres(folder)
            shutil.rmtree(folder, ignore_errors=True)

    for figures in results:
        print_table(figures)
        for label, plan in figures["plans"].items():
            print(f"  plan, {label}:")
            for line in plan:
                print(f"    {line}")
    print()
    for figures in results:
        for line in verdicts(figures):
            print(line)
    print(f"load average now: {', '.join(f'{value:.1f}' for value in os.getloadavg())} "
          f"(other work on the machine slows every figure)")


def durable(url: str) -> None:
    """Switch the throwaway cluster's durability back on (tests/postgres_server.py turns
    fsync and synchronous_commit off for the tests' speed), as a production server has it."""
    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as connection:
        for setting in ("fsync", "synchronous_commit", "full_page_writes"):
            connection.execute(f"ALTER SYSTEM SET {setting} = on")
        connection.execute("SELECT pg_reload_conf()")


def server_version(url: str) -> str:
    """PostgreSQL's version and the settings that matter here, in words."""
    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo) as connection:
        settings = [f"{name} {connection.execute(f'SHOW {name}').fetchone()[0]}"
                    for name in ("server_version", "fsync", "synchronous_commit",
                                 "shared_buffers")]
    return ", ".join(settings)


if __name__ == "__main__":
    main()
